"""The live recording: bounded memory, every row back in order, a capped end stated."""

from __future__ import annotations

import pytest

from cblab.lab.recording import Recording


def test_rows_spill_to_disk_and_come_back_in_order(tmp_path):
    recording = Recording(7, spill_dir=str(tmp_path), t_index=0)
    rows = [(i / 10, "x", i) for i in range(100)]
    for row in rows:
        recording.append(row)
        assert recording.in_memory < 7
    assert recording.spilled == 98 and len(recording) == 100
    assert list(recording.rows()) == rows
    recording.append((10.0, "y", 100))  # appending after a read keeps the order
    assert list(recording.rows())[-2:] == [rows[-1], (10.0, "y", 100)]
    recording.close()
    assert list(recording.rows()) == []


def test_the_cap_keeps_the_start_and_counts_the_rest():
    recording = Recording(3, max_rows=5, t_index=0)
    for t in (0, 1, 2, 3, 4, 6, 5, 7, 8):  # another source's batch arrives late
        recording.append((float(t),))
    assert [r[0] for r in recording.rows()] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert recording.not_kept == 4 and recording.stopped_at == 5.0  # the earliest not kept


@pytest.mark.parametrize("memory, cap", [(0, 10), (True, 10), (5, 4), (5, 2.5)])
def test_bad_sizes_are_refused(memory, cap):
    with pytest.raises(ValueError, match=r"memory_rows|max_rows"):
        Recording(memory, max_rows=cap)


def test_a_session_refuses_a_bad_recording_size():
    from cblab.lab import LabParams, LabSession

    with pytest.raises(ValueError, match="recording_rows must be an int >= 1, got 0"):
        LabSession(LabParams(), recording_rows=0)
