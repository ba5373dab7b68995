"""ChatTemplate: Hugging Face conventions, built-in formats, model defaults, and a sandbox
that untrusted templates cannot escape, hang or blow up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fireside.chat.templates import ChatTemplate, builtin_template_names, fallback_name
from fireside.errors import TemplateError

SYSTEM, USER1, ASSISTANT1, USER2 = "SYS-TEXT", "USER-ONE", "ASSIST-ONE", "USER-TWO"
CONVERSATION = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": USER1},
    {"role": "assistant", "content": ASSISTANT1},
    {"role": "user", "content": USER2},
]


def render(source: str, **variables) -> str:
    messages = variables.pop("messages", [{"role": "user", "content": "hi"}])
    return ChatTemplate(source).render(messages, **variables)


# --- Hugging Face conventions ------------------------------------------------------------


def test_trim_blocks_and_lstrip_blocks() -> None:
    source = "A\n  {% if true %}\nB\n  {% endif %}\nC"
    assert render(source) == "A\nB\nC"


def test_loop_controls() -> None:
    source = "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"
    assert render(source) == "013"


def test_raise_exception_carries_the_template_message() -> None:
    with pytest.raises(TemplateError, match="^Conversation roles must alternate$"):
        render("{{ raise_exception('Conversation roles must alternate') }}")


def test_strftime_now() -> None:
    out = render("{{ strftime_now('%Y-%m-%d') }}")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", out)


def test_tojson_is_real_json_and_keeps_non_ascii() -> None:
    value = {"b": "é<&>'", "a": [1, None, True]}
    assert render("{{ v | tojson }}", v=value) == '{"b": "é<&>\'", "a": [1, null, true]}'
    assert render("{{ v | tojson(indent=2) }}", v={"a": 1}) == '{\n  "a": 1\n}'
    assert render("{{ v | tojson(sort_keys=true) }}", v=value).startswith('{"a"')
    assert render("{{ v | tojson(ensure_ascii=true) }}", v="é") == '"\\u00e9"'


def test_variables_are_passed() -> None:
    source = "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools | length }}|{{ extra }}|{{ messages[0].role }}"
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    out = template.render([{"role": "user", "content": "x"}], tools=[{"name": "f"}], extra="E")
    assert out == "<s>|</s>|True|1|E|user"
    out = template.render([{"role": "user"}], add_generation_prompt=False, tools=[], extra="")
    assert out.split("|")[2] == "False"
    assert ChatTemplate("{{ tools is none }}").render([]) == "True"


def test_generation_tag_renders_its_body() -> None:
    assert render("{% generation %}kept{% endgeneration %}") == "kept"


def test_syntax_error_names_the_problem_and_line() -> None:
    with pytest.raises(TemplateError, match=r"syntax error on line 2: .*endfor"):
        ChatTemplate("{% for m in messages %}\n{{ m }}", name="broken")
    with pytest.raises(TemplateError, match="No filter named 'nope'"):
        ChatTemplate("{{ x | nope }}")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        ChatTemplate("")
    with pytest.raises(ValueError, match="eos_token must be a string"):
        ChatTemplate("x", eos_token=None)  # type: ignore[arg-type]
    template = ChatTemplate("{{ messages | length }}")
    with pytest.raises(TypeError, match="messages must be a list"):
        template.render("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"messages\[1\] must be a dict"):
        template.render([{"role": "user", "content": "a"}, "b"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"messages\[0\] has role None; a message needs a 'role'"):
        template.render([{"content": "a"}])


def test_runtime_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render("{{ 1 // 0 }}")
    with pytest.raises(TemplateError, match="undefined"):
        render("{{ missing.attribute }}")


# --- built-in templates --------------------------------------------------------------------

EXPECTED = {
    "chatml": "<|im_start|>system\nSYS-TEXT<|im_end|>\n<|im_start|>user\nUSER-ONE<|im_end|>\n"
    "<|im_start|>assistant\nASSIST-ONE<|im_end|>\n<|im_start|>user\nUSER-TWO<|im_end|>\n"
    "<|im_start|>assistant\n",
    "llama2": "<s>[INST] <<SYS>>\nSYS-TEXT\n<</SYS>>\n\nUSER-ONE [/INST] ASSIST-ONE </s>"
    "<s>[INST] USER-TWO [/INST]",
    "llama3": "<s><|start_header_id|>system<|end_header_id|>\n\nSYS-TEXT<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nUSER-ONE<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nASSIST-ONE<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nUSER-TWO<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "mistral": "<s>[INST] SYS-TEXT\n\nUSER-ONE [/INST]ASSIST-ONE</s>[INST] USER-TWO [/INST]",
    "gemma": "<s><start_of_turn>user\nSYS-TEXT\n\nUSER-ONE<end_of_turn>\n<start_of_turn>model\n"
    "ASSIST-ONE<end_of_turn>\n<start_of_turn>user\nUSER-TWO<end_of_turn>\n<start_of_turn>model\n",
    "phi3": "<|system|>\nSYS-TEXT<|end|>\n<|user|>\nUSER-ONE<|end|>\n<|assistant|>\nASSIST-ONE<|end|>\n"
    "<|user|>\nUSER-TWO<|end|>\n<|assistant|>\n",
    "zephyr": "<|system|>\nSYS-TEXT</s>\n<|user|>\nUSER-ONE</s>\n<|assistant|>\nASSIST-ONE</s>\n"
    "<|user|>\nUSER-TWO</s>\n<|assistant|>\n",
    "vicuna": "<s>SYS-TEXT USER: USER-ONE ASSISTANT: ASSIST-ONE</s>USER: USER-TWO ASSISTANT:",
    "alpaca": "<s>SYS-TEXT\n\n### Instruction:\nUSER-ONE\n\n### Response:\nASSIST-ONE</s>\n\n"
    "### Instruction:\nUSER-TWO\n\n### Response:\n",
    "deepseek": "<s>SYS-TEXT\n\nUser: USER-ONE\n\nAssistant: ASSIST-ONE</s>User: USER-TWO\n\nAssistant:",
    "deepseek3": "<s>SYS-TEXT<｜User｜>USER-ONE<｜Assistant｜>ASSIST-ONE</s><｜User｜>USER-TWO<｜Assistant｜>",
    "command-r": "<s><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>SYS-TEXT<|END_OF_TURN_TOKEN|>"
    "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>USER-ONE<|END_OF_TURN_TOKEN|>"
    "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>ASSIST-ONE<|END_OF_TURN_TOKEN|>"
    "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>USER-TWO<|END_OF_TURN_TOKEN|>"
    "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
}


def test_every_builtin_has_an_expected_rendering() -> None:
    assert set(builtin_template_names()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_formats(name: str) -> None:
    template = ChatTemplate.builtin(name, bos_token="<s>", eos_token="</s>")
    assert template.render(CONVERSATION) == EXPECTED[name]
    without_prompt = template.render(CONVERSATION, add_generation_prompt=False)
    assert EXPECTED[name].startswith(without_prompt.removesuffix("</s>"))
    assert USER2 in without_prompt


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtins_take_content_parts_and_no_system(name: str) -> None:
    template = ChatTemplate.builtin(name, bos_token="<s>", eos_token="</s>")
    parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "PART-A "},
                {"type": "image"},
                {"type": "text", "text": "PART-B"},
            ],
        }
    ]
    out = template.render(parts)
    assert "PART-A PART-B" in out and "image" not in out


def test_unknown_builtin_lists_valid_names() -> None:
    with pytest.raises(
        ValueError, match="unknown chat template name 'chatgpt'; valid names: alpaca, chatml"
    ):
        ChatTemplate.builtin("chatgpt")


def test_strict_builtins_reject_unknown_roles() -> None:
    with pytest.raises(TemplateError, match="only system, user and assistant roles"):
        ChatTemplate.builtin("llama2").render([{"role": "tool", "content": "x"}])


# --- untrusted templates: no escape -----------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ [].__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__.__builtins__.open('/etc/passwd').read() }}",
    "{{ raise_exception.__globals__ }}",
    "{{ strftime_now.__globals__['datetime'] }}",
    "{{ range.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ messages.__class__ }}",
    "{{ (messages|attr('__class__')) }}",
    "{{ messages|map(attribute='__class__')|list }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ lipsum.__globals__ }}",
    "{{ tojson.__globals__ }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os.system('id') }}",
    "{% extends '/etc/passwd' %}",
    "{% from 'os' import system %}",
    "{{ messages.append(1) }}{{ messages }}",
    "{{ messages[0].update({'role': 'x'}) }}",
    "{{ messages.pop() }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_templates_cannot_reach_python_internals_or_files(source: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    try:
        out = ChatTemplate(source).render(messages)
    except TemplateError:
        return
    # rendered harmlessly: nothing leaked and nothing changed
    for secret in (
        "root:",
        "uid=",
        "<class",
        "module",
        "function",
        "builtins",
        "subprocess",
        "TemplateReference",
    ):
        assert secret not in out, out
    assert messages == [{"role": "user", "content": "hi"}]


def test_lipsum_is_gone_and_unsafe_calls_fail() -> None:
    with pytest.raises(TemplateError):
        render("{{ lipsum(1000000) }}")
    with pytest.raises(TemplateError):
        render("{{ ''.__class__.__mro__ }}")


# --- untrusted templates: no hang, no memory blow-up ---------------------------------------

HOSTILE = {
    "huge range": "{% for i in range(10**9) %}{% endfor %}",
    "range list": "{{ range(10**8) | list | length }}",
    "nested loops": "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}",
    "loop over a huge string": "{% set s = 'x' * 900000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "string repeat": "{{ 'a' * 10**10 }}",
    "list repeat": "{{ ([1] * 10**9) | length }}",
    "repeat of repeat": "{% set a = 'x' * 1000000 %}{{ [a] * 100000 }}",
    "int power": "{{ 10 ** 1000000 }}",
    "int squaring": "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 0 }}",
    "concat doubling": "{% set ns = namespace(s='ab') %}{% for i in range(80) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
    "plus doubling": "{% set ns = namespace(s='ab') %}{% for i in range(80) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
    "list doubling": "{% set ns = namespace(l=[1]) %}{% for i in range(80) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
    "printf width": "{{ '%999999999d' % 1 }}",
    "printf filter": "{{ '%0999999999d' | format(1) }}",
    "format width": "{{ '{:>999999999}'.format(1) }}",
    "format many widths": "{{ ('{:>900000}' * 50).format(*range(50)) }}",
    "center": "{{ 'x' | center(10**10) }}",
    "str method width": "{{ 'x'.ljust(10**10) }}",
    "replace growth": "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s.replace('a', 'aaaa') %}{% endfor %}{{ ns.s | length }}",
    "replace filter growth": "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s | replace('a', 'aaaa') %}{% endfor %}{{ ns.s | length }}",
    "replace empty": "{% set s = 'x' * 100000 %}{{ s.replace('', s) | length }}",
    "join growth": "{% set s = 'x' * 1000000 %}{{ s.join(range(100000) | map('string')) | length }}",
    "join filter growth": "{% set s = 'x' * 1000000 %}{{ range(100000) | join(s) | length }}",
    "indent growth": "{% set s = '\\n' * 1000000 %}{{ s | indent(1000000) | length }}",
    "wordwrap growth": "{% set s = 'ab ' * 300000 %}{{ s | wordwrap(1, wrapstring='x' * 1000000) | length }}",
    "expandtabs growth": "{% set s = '\\t' * 1000000 %}{{ s.expandtabs(1000000) | length }}",
    "translate growth": "{% set s = 'a' * 1000000 %}{{ s.translate({97: 'b' * 1000000}) | length }}",
    "nested literal lists": "{% set a = ['x' * 1000] %}"
    + "".join("{% set a = [a, a, a, a, a, a, a, a, a, a] %}" for _ in range(12))
    + "{{ a | string | length }}",
    "nested literal lists output": "{% set a = ['x' * 1000] %}"
    + "".join("{% set a = [a, a, a, a, a, a, a, a, a, a] %}" for _ in range(12))
    + "{{ a }}",
    "tojson separators": "{{ range(100000) | list | tojson(separators=('x' * 1000, ':')) }}",
    "tojson of nested lists": "{% set a = ['x' * 1000] %}"
    + "".join("{% set a = [a, a, a, a, a, a, a, a, a, a] %}" for _ in range(12))
    + "{{ a | tojson }}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "exponential recursion": "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "recursive loop": "{% for m in messages recursive %}{{ loop(messages + messages) }}{% endfor %}",
    "static text in a macro loop": "{% macro m() %}{% for i in range(100000) %}"
    + "x" * 2000
    + "{% endfor %}{% endmacro %}{% set r = m() %}done",
    "output flood": "{% for i in range(150000) %}" + "y" * 100 + "{% endfor %}",
    "sum of lists": "{{ ([[0]] * 300000) | sum(start=[]) | length }}",
    "dict fromkeys": "{{ dict.fromkeys(range(10**9)) | length }}",
    "list extend doubling": "{% set l = ['x' * 100] %}{% for i in range(40) %}{% set _ = l.extend(l) %}{% endfor %}{{ l | length }}",
    "dict update growth": "{% set d = {} %}{% for i in range(10**6) %}{% set _ = d.update({i: 'x' * 1000}) %}{% endfor %}{{ d | length }}",
    "messages mutated": "{% set _ = messages.append(messages) %}{{ messages | tojson }}",
    "huge int to string": "{% set ns = namespace(x=7) %}{% for i in range(12) %}{% set ns.x = ns.x ** 2 %}{% endfor %}{{ ns.x }}",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_templates_fail_cleanly(source: str) -> None:
    with pytest.raises(TemplateError):
        ChatTemplate(source).render([{"role": "user", "content": "hi"}])


def test_budget_scales_with_a_legitimately_large_conversation() -> None:
    """5,000 messages and ~3 MB of text render fine under the default template."""
    big = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i} " + "w" * 600}
        for i in range(5000)
    ]
    out = ChatTemplate.builtin("chatml").render(big)
    assert out.count("<|im_start|>") == 5001
    assert len(out) > 3_000_000


def test_large_conversation_under_real_templates(llama_cpp_dir: Path) -> None:
    """Templates that look at ``messages | length`` in every iteration stay fast."""
    messages = [{"role": "system", "content": "sys"}]
    messages += [
        {"role": ("user", "assistant")[i % 2], "content": f"{i} " + "w" * 200} for i in range(2000)
    ]
    for name in ("Qwen-Qwen3-0.6B.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja"):
        source = (llama_cpp_dir / "models" / "templates" / name).read_text(encoding="utf-8")
        out = ChatTemplate(source).render(messages)
        assert "1999 " in out


def test_tojson_of_a_large_value_is_allowed() -> None:
    messages = [{"role": "user", "content": "w" * 1000} for _ in range(1000)]
    out = ChatTemplate("{{ messages | tojson(indent=2) }}").render(messages)
    assert len(out) > 1_000_000


def test_loop_attributes_work_through_the_budget() -> None:
    source = (
        "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ loop.cycle('a', 'b') }}"
        "{{ '!' if loop.last }}{% endfor %}{% for x in [] %}{% else %}empty{% endfor %}"
    )
    messages = [{"role": "user", "content": str(i)} for i in range(3)]
    assert ChatTemplate(source).render(messages) == "1/3a2/3b3/3a!empty"


def test_renders_are_independent() -> None:
    """One render's spending does not count against the next."""
    template = ChatTemplate("{% for i in range(80000) %}{% endfor %}ok")  # 160,000 steps
    for _ in range(3):
        assert template.render([]) == "ok"


# --- choosing a template for a model --------------------------------------------------------


class FakeModel:
    """Just enough of _core.Model for template selection."""

    def __init__(
        self,
        architecture: str,
        template: str | None = None,
        specials: tuple[str, ...] = (),
        vocab_type: str = "bpe",
    ) -> None:
        self.architecture = architecture
        self.vocab_type = vocab_type
        self._template = template
        self._specials = specials
        self.bos, self.eos = 1, 2

    def chat_template(self, name: str | None = None) -> str | None:
        return self._template

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = False
    ) -> list[int]:
        return [7] if text in self._specials and parse_special else [7, 8, 9]

    def token_to_piece(self, token: int, *, special: bool = True, lstrip: int = 0) -> bytes:
        return {1: b"<BOS>", 2: b"<EOS>"}[token]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (FakeModel("gemma3"), "gemma"),
        (FakeModel("phi3"), "phi3"),
        (FakeModel("qwen2"), "chatml"),
        (FakeModel("command-r"), "command-r"),
        (FakeModel("llama", specials=("<|start_header_id|>",)), "llama3"),
        (FakeModel("llama", specials=("<|im_start|>",)), "chatml"),
        (FakeModel("llama", specials=("[INST]",)), "mistral"),
        (FakeModel("llama", vocab_type="spm"), "llama2"),
        (FakeModel("deepseek2", specials=("<｜User｜>",)), "deepseek"),
        (FakeModel("mamba"), "chatml"),
    ],
)
def test_fallback_by_architecture_and_vocabulary(model: FakeModel, expected: str) -> None:
    assert fallback_name(model) == expected  # type: ignore[arg-type]
    template = ChatTemplate.for_model(model)  # type: ignore[arg-type]
    assert template.name == expected
    assert (template.bos_token, template.eos_token) == ("<BOS>", "<EOS>")


def test_for_model_prefers_override_then_gguf() -> None:
    model = FakeModel("llama", template="{{ bos_token }}GGUF{{ eos_token }}")
    assert ChatTemplate.for_model(model).render([]) == "<BOS>GGUF<EOS>"  # type: ignore[arg-type]
    assert ChatTemplate.for_model(model, "{{ 'custom' }}").render([]) == "custom"  # type: ignore[arg-type]
    assert ChatTemplate.for_model(model, "zephyr").name == "zephyr"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid names: alpaca, chatml, command-r"):
        ChatTemplate.for_model(model, "no-such-format")  # type: ignore[arg-type]
    with pytest.raises(TemplateError, match="syntax error"):
        ChatTemplate.for_model(model, "{% if %}")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def smollm(model_path):
    core = pytest.importorskip("fireside._core", reason="the native module is not built")
    model = core.Model(model_path, vocab_only=True)
    yield model
    model.close()


def test_smollm2_gguf_template_renders_chatml(smollm) -> None:
    template = ChatTemplate.for_model(smollm)
    assert template.name == "gguf"
    assert (template.bos_token, template.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert template.render(CONVERSATION) == EXPECTED["chatml"]
    # without a system message, SmolLM2's template adds its own
    out = template.render(CONVERSATION[1:2])
    assert out.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert out.endswith("<|im_start|>user\nUSER-ONE<|im_end|>\n<|im_start|>assistant\n")
    # and the special markers are single tokens of its vocabulary
    assert len(smollm.tokenize("<|im_start|>", add_special=False, parse_special=True)) == 1


# --- conformance: every template vendored with llama.cpp ------------------------------------

SAMPLE_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}


def render_conversation(template: ChatTemplate) -> tuple[str, list[str]]:
    """Render system + user + assistant + user; adapt where a template demands it.

    Fallbacks, in the order a template's error asks for them:
    * it rejects the system role (or demands strict user/assistant alternation): the
      system prompt is merged into the first user message, as those models expect;
    * it is a tool-use variant that iterates ``tools`` unconditionally: it gets one tool;
    * it reads a model-specific variable (``'name' is undefined``): that variable is
      passed empty.
    Returns the text and the fallbacks used.
    """
    messages = [dict(m) for m in CONVERSATION]
    extra: dict[str, object] = {}
    used: list[str] = []
    for _ in range(6):
        try:
            return template.render(messages, **extra), used
        except TemplateError as error:
            message = str(error)
            undefined = re.search(r"'(\w+)' is undefined", message)
            if messages[0]["role"] == "system" and re.search(
                r"system|role|alternat", message, re.IGNORECASE
            ):
                messages = [{"role": "user", "content": f"{SYSTEM}\n\n{USER1}"}, *messages[2:]]
                used.append("system merged into the first user message")
            elif "tools" not in extra and "NoneType" in message:
                extra["tools"] = [SAMPLE_TOOL]
                used.append("one tool")
            elif undefined and undefined.group(1) not in extra:
                extra[undefined.group(1)] = ""
                used.append(f"{undefined.group(1)}=''")
            else:
                raise
    raise AssertionError(f"{template.name}: no fallback helped ({used})")


def test_every_llama_cpp_template_renders(llama_cpp_dir: Path) -> None:
    files = sorted((llama_cpp_dir / "models" / "templates").glob("*.jinja"))
    assert len(files) > 20
    rendered, failures = 0, []
    for path in files:
        template = ChatTemplate(
            path.read_text(encoding="utf-8"), bos_token="<s>", eos_token="</s>", name=path.name
        )
        try:
            text, used = render_conversation(template)
        except TemplateError as error:
            failures.append(f"{path.name}: {error}")
            continue
        if USER1 not in text or USER2 not in text:
            failures.append(f"{path.name}: user texts missing from {text!r}")
            continue
        rendered += 1
        if used:
            print(f"{path.name}: rendered with fallback: {', '.join(used)}")
    print(f"llama.cpp templates rendered: {rendered}/{len(files)}")
    assert not failures, "\n".join(failures)
