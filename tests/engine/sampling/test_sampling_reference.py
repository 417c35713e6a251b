"""Every sampling variant gives today exactly what it gave before issue 16's refactor.

``sampling_reference.npz`` was recorded by ``sampling_reference.py`` on the code before the
samplers were rewritten around one guidance wrapper, one flow path and one stepper; the
same script run on today's code must give the same bits (``torch.equal``): MLA-Gen's eager
and graphed loops (sink-ctrl, CFG, CFG at 1, Euler, Heun, a custom controller), MoLingo's
MAR loop and its static loop (both conditionings, guided or not, both schedules, padded
clips), the MoLingo release's own loop, and the shipped checkpoint through ``generate``.

Bits depend on the CPU's vector unit as well as on the code; on a machine unlike the one
that recorded them (``fingerprint``) the comparison allows float rounding (1e-12 relative
in float64, 1e-5 in float32) instead of failing on a difference the code did not make.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sampling_reference import PARTS, RECORDED, fingerprint, outputs

pytestmark = pytest.mark.skipif(not RECORDED.is_file(), reason="no recorded outputs")


@pytest.fixture(scope="module")
def recorded() -> dict[str, np.ndarray]:
    with np.load(RECORDED) as data:
        return {name: data[name] for name in data.files}


@pytest.mark.parametrize("part", list(PARTS))
def test_sampling_is_bit_identical_to_the_recording(recorded, part):
    threads = torch.get_num_threads()
    try:
        now = outputs((part,))
    finally:
        torch.set_num_threads(threads)
    expected = {k: v for k, v in recorded.items() if k.split("/")[0] in _prefixes(part)}
    if part == "pipeline" and not now:
        pytest.skip("the shipped checkpoint or its text encoder is not available here")
    assert expected, f"nothing recorded for {part}"
    assert sorted(now) == sorted(expected)
    exact = str(recorded["_meta/fingerprint"]) == fingerprint()
    for name, value in expected.items():
        ours = torch.from_numpy(now[name])
        theirs = torch.from_numpy(value)
        if exact:
            assert torch.equal(ours, theirs), name
        else:
            rtol = 1e-12 if theirs.dtype == torch.float64 else 1e-5
            torch.testing.assert_close(ours, theirs, rtol=rtol, atol=rtol, msg=name)


def _prefixes(part: str) -> tuple[str, ...]:
    return ("mar", "mar_static") if part == "mar" else (part,)
