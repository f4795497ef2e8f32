"""The synthetic world expresses X-Pool's premise: the test sentence of a clip describes a
subset of its events (the rest are distractors), every event is long enough to be sampled,
and a single frame shows which way a shape moves (frame pooling ignores frame order)."""

import numpy as np

from tessera.datamodules.retrieval import synth


def test_test_sentence_names_a_subset_of_the_events():
    rng = np.random.default_rng(0)
    for _ in range(50):
        events, lengths = synth.sample_clip(rng)
        assert 3 <= len(events) <= 4 and len(lengths) == len(events)
        assert min(lengths) >= 0.15 * sum(lengths) - 1  # eight even frames see every event
        captions, test = synth.captions_for(events, rng)
        named = [e for e in events if synth.describe(e) in test]
        assert len(named) == 2 < len(events)  # a subset; the other events are distractors
        assert test in captions and len(captions) == 1 + len(events) + len(events) * (
            len(events) - 1) // 2  # fmt: skip
        pairs = {(e["colour"], e["shape"]) for e in events}
        assert len(pairs) == len(events)  # colour + shape bind one event of the clip


def test_one_frame_shows_the_direction():
    event = {"colour": "red", "shape": "circle"}
    left = synth.render_clip([event | {"direction": "left"}], [9], 32, (0, 0, 0))
    right = synth.render_clip([event | {"direction": "right"}], [9], 32, (0, 0, 0))
    # the middle frames put the shape at the same place; only the trail differs
    red = np.array(synth.COLOURS["red"], np.uint8)
    assert (left[4] == red).all(-1).sum() == (right[4] == red).all(-1).sum() > 0
    assert not np.array_equal(left[4], right[4])
    for frames, side in ((left, 1), (right, -1)):  # the trail lies behind the shape
        solid = (frames[4] == red).all(-1)
        trail = (frames[4, ..., 0] > 0) & ~solid
        xs = np.nonzero(solid)[1].mean(), np.nonzero(trail)[1].mean()
        assert side * (xs[1] - xs[0]) > 2


def test_world_is_deterministic_and_in_the_msrvtt_layout(tmp_path):
    a = synth.write_world(tmp_path / "a", seed=4, train=2, val=1, test=2)
    b = synth.write_world(tmp_path / "b", seed=4, train=2, val=1, test=2)
    assert (a / "MSRVTT_data.json").read_text() == (b / "MSRVTT_data.json").read_text()
    assert (a / "MSRVTT_JSFUSION_test.csv").read_text().count("\n") == 3
    assert len(list((a / "videos/all").glob("video*.mp4"))) == 5
