"""Hostile Go templates stop within the render limits, inside a single call too.

Each gadget runs in a fresh interpreter and must fail with TemplateLimitError naming the limit
it hit, within 5 s of wall time (the default deadline is 2 s; the margin is for this noisy
2-core VM) and with under 64 MB of extra peak memory: the peak resident size during the
render (Linux's VmHWM, reset just before it) minus the resident size before it.
``GADGET_REPORT=1 pytest -s`` prints the measured numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from llamahost.chat.gotemplate import GoTemplate
from llamahost.errors import OptionError, TemplateLimitError, TemplateSecurityError

# $y is 4 MB of spaces, built the way the registry template in the issue built it.
Y = '{{ $x := printf "%1000000s" "" }}{{ $y := printf "%s%s%s%s" $x $x $x $x }}'
# $e is 16^5 = 1 Mi characters "<": JSON and js escape each into 6 characters.
LT = "".join(
    f"{{{{ ${b} := print {' '.join([f'${a}'] * 16)} }}}}"
    for a, b in (("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"))
)
LT = '{{ $a := "' + "<" * 16 + '" }}' + LT
U = '{{ $x := printf "%1000000s" "\U0001f600" }}{{ $y := print $x $x $x }}'  # 12 MB
CTRL = LT.replace("<" * 16, "\\x01" * 16)  # %q writes \x01: 4 characters each


def _args(n: int, name: str = "$y") -> str:
    return " ".join([name] * n)


TIME, OUTPUT, MEMORY, DEPTH = "`timeout_s`", "`max_output_chars`", "`max_memory_bytes`", "deeper"

# name: (template, the limit its error must name)
GADGETS: dict[str, tuple[str, str]] = {
    # the gadgets: one call with hundreds of 4 MB arguments
    "printf_300_args": (Y + '{{ printf "%v" ' + _args(300) + " }}", OUTPUT),
    "printf_300_verbs": (Y + '{{ printf "' + "%s" * 300 + '" ' + _args(300) + " }}", OUTPUT),
    "print_300_args": (Y + "{{ print " + _args(300) + " }}", OUTPUT),
    "println_300_args": (Y + "{{ println " + _args(300) + " }}", OUTPUT),
    "urlquery_250_args": (Y + "{{ urlquery " + _args(250) + " }}", OUTPUT),
    "html_300_args": (Y + "{{ html " + _args(300) + " }}", OUTPUT),
    "js_300_args": (Y + "{{ js " + _args(300) + " }}", OUTPUT),
    # transforms that grow their input
    "json_escape_growth": (LT + "{{ json $e }}", OUTPUT),
    "js_escape_growth": (LT + "{{ js $e }}", OUTPUT),
    "printf_q_growth": (CTRL + '{{ printf "%q" $e }}', OUTPUT),
    # widths and precisions Go accepts (up to 10^7)
    "width_10M": ('{{ printf "%10000000d" 1 }}', OUTPUT),
    "precision_10M": ('{{ printf "%.10000000f" 1.5 }}', OUTPUT),
    "width_per_element": ('{{ printf "%1000000v" .L }}', OUTPUT),
    # values rebuilt and kept
    "doubling": ('{{ $s := "ab" }}{{ range 64 }}{{ $s = print $s $s }}{{ end }}', OUTPUT),
    "variable_hoard": (Y + "".join(f"{{{{ $v{i} := print $y }}}}" for i in range(20)), MEMORY),
    "rebuild_in_loop": (Y + "{{ range 100000000 }}{{ $z := print $y }}{{ end }}", MEMORY),
    "slice_in_loop": (Y + "{{ range 100000000 }}{{ $z := slice $y 1 }}{{ end }}", MEMORY),
    "slice_list_in_loop": ("{{ range 100000000 }}{{ $z := slice $.Big 1 }}{{ end }}", TIME),
    "output_flood": (Y + "{{ range 100000000 }}{{ $y }}{{ end }}", OUTPUT),
    # four bytes a character: the budget counts bytes
    "ucs4_copies": (U + "".join(f'{{{{ $v{i} := print $y "a" }}}}' for i in range(20)), MEMORY),
    "ucs4_output_flood": (U + "{{ range 100000000 }}{{ $y }}{{ end }}", OUTPUT),
    # long loops of cheap or O(n) calls
    "index_in_loop": (Y + "{{ range 100000000 }}{{ $c := index $y 3999999 }}{{ end }}", TIME),
    "index_utf8_in_loop": (
        Y + '{{ $u := print "é" $y }}{{ range 100000000 }}{{ $c := index $u 3999999 }}{{ end }}',
        TIME,
    ),
    "len_utf8_in_loop": (
        Y + '{{ $u := print "é" $y }}{{ range 100000000 }}{{ $n := len $u }}{{ end }}',
        TIME,
    ),
    "range_huge_int": ("{{ range 1000000000000 }}{{ end }}", TIME),
    "nested_range": ("{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}", TIME),
    # recursion: straight, and a fan-out of 2^40 calls that stays 41 deep
    "recursion_depth": (
        '{{ define "r" }}x{{ template "r" . }}{{ end }}{{ template "r" . }}',
        DEPTH,
    ),
    "recursion_fanout": (
        "".join(
            f'{{{{ define "t{i}" }}}}{{{{ template "t{i + 1}" . }}}}{{{{ template "t{i + 1}" . }}}}'
            "{{ end }}"
            for i in range(40)
        )
        + '{{ define "t40" }}x{{ end }}{{ template "t0" . }}',
        TIME,
    ),
}

_CHILD = """
import gc, json, resource, sys, time
from llamahost.chat.gotemplate import GoTemplate

def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(key))

source = sys.stdin.read()
template = GoTemplate(source)
data = {"L": list(range(100)), "Big": list(range(200_000))}
gc.collect()
try:  # reset the peak (VmHWM) to the current resident size, so the peak is the render's
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before, peak = status("VmRSS:"), lambda: status("VmHWM:")
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    template.render(data)
    error, message = None, ""
except Exception as exc:
    error, message = type(exc).__name__, str(exc)
seconds = time.monotonic() - start
print(json.dumps({"error": error, "message": message, "seconds": seconds,
                  "extra_mb": (peak() - before) / 1024}))
"""


def _run_gadget(source: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=source,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GADGETS))
def test_hostile_template_stops_within_limits(name: str) -> None:
    source, limit = GADGETS[name]
    result = _run_gadget(source)
    if os.environ.get("GADGET_REPORT"):
        print(
            f"\n{name}: {result['seconds']:.2f} s, +{result['extra_mb']:.1f} MB,"
            f" {result['error']}: {result['message']}"
        )
    assert result["error"] == "TemplateLimitError", result
    assert limit in str(result["message"]), result
    assert float(str(result["seconds"])) < 5.0, result
    assert float(str(result["extra_mb"])) < 64.0, result


class SteppingClock:
    """A clock that moves on by ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_deadline_interrupts_a_single_call() -> None:
    """One ``print`` of a long list: the deadline is checked while the call builds its value."""
    clock = SteppingClock(0.01)
    tmpl = GoTemplate("{{ $s := print .L }}done", timeout_s=1.0, clock=clock)
    with pytest.raises(TemplateLimitError, match=r"longer than 1.0 s \(`timeout_s`\)"):
        tmpl.render({"L": list(range(200_000))})
    assert clock.now < 2.0  # stopped soon after the deadline, well before the call's end
    assert tmpl.render({"L": [1, 2]}) == "done"


def test_each_value_is_checked_before_it_is_built() -> None:
    tmpl = GoTemplate("{{ $s := printf .F .A .A .A }}{{ len $s }}", max_output_chars=10)
    with pytest.raises(TemplateLimitError, match=r"`printf` result exceeds 10 characters"):
        tmpl.render({"F": "%s%s%s", "A": "abcd"})
    assert tmpl.render({"F": "%s%s%s", "A": "abc"}) == "9"
    with pytest.raises(TemplateLimitError, match=r"`printf` result exceeds 10 characters"):
        GoTemplate('{{ printf "%11d" 1 }}', max_output_chars=10).render({})
    with pytest.raises(TemplateLimitError, match=r"`html` result exceeds 10 characters"):
        GoTemplate('{{ html "<<<" }}', max_output_chars=10).render({})  # 12 after escaping


def test_memory_budget_counts_every_built_value() -> None:
    source = '{{ range .L }}{{ $s := printf "%50s" . }}{{ end }}ok'
    tmpl = GoTemplate(source, max_memory_bytes=1000)
    assert tmpl.render({"L": list(range(10))}) == "ok"  # 500 bytes built
    with pytest.raises(TemplateLimitError, match=r"more than 1000 bytes .*`max_memory_bytes`"):
        tmpl.render({"L": list(range(30))})  # 1500 bytes built, though each copy is freed


def test_memory_limit_is_validated() -> None:
    with pytest.raises(OptionError, match=r"`max_memory_bytes` must be >= 1"):
        GoTemplate("x", max_memory_bytes=0)


def test_limit_errors_are_template_security_errors() -> None:
    with pytest.raises(TemplateLimitError) as info:
        GoTemplate("{{ range 10 }}0123456789{{ end }}", max_output_chars=50).render({})
    assert isinstance(info.value, TemplateSecurityError)  # callers that catch it still do
    assert str(info.value) == "template output exceeds 50 characters (`max_output_chars`)"
