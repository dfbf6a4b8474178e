"""netspec.gcpause: the cyclic GC pauses while a spec is built, and everything is as before afterwards."""

from __future__ import annotations

import gc
import weakref

from netspec.api import parse_text
from netspec.gcpause import building

SPEC = "network N {\n    input x: [8]\n    y = x -> dense(4) -> relu\n    output y\n}\n"


class _Cycle:
    pass


def test_the_gc_runs_again_after_a_check_and_nothing_stays_frozen():
    assert gc.isenabled()
    parse_text(SPEC, "n.net")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_paused_gc_stays_paused_and_the_outermost_use_resumes():
    gc.disable()
    try:
        parse_text(SPEC, "n.net")
        assert not gc.isenabled()
    finally:
        gc.enable()
    with building():
        assert not gc.isenabled()
        with building():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner use does not resume
    assert gc.isenabled()


def test_garbage_made_during_a_build_is_still_collected():
    with building():
        a, b = _Cycle(), _Cycle()
        a.other, b.other = b, a  # a reference cycle: only the cyclic GC frees it
        probe = weakref.ref(a)
        del a, b
    assert probe() is not None
    gc.collect()
    assert probe() is None


def test_an_error_inside_a_build_resumes_the_gc():
    try:
        with building():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled() and gc.get_freeze_count() == 0
