"""The plain parts of the media path: conversions, pacing, clocks, policies, jitter buffer,
encoder. No event loop, no network."""

from __future__ import annotations

import av
import numpy as np
import pytest

from rtcbot.media import (
    AudioClock,
    BitratePolicy,
    FramePacer,
    KeyframePolicy,
    MarkerJitterBuffer,
    VideoEncoder,
    VideoEncoderSettings,
    audio_frame_to_float,
    capture_time,
    check_bgr_frame,
    timestamped,
    to_bgr_array,
    to_int16_samples,
    to_video_frame,
)

# ----------------------------------------------------------------------------- video frames


def test_bgr_frame_rules_name_the_value():
    check_bgr_frame(np.zeros((4, 6, 3), np.uint8))
    check_bgr_frame(np.zeros((4, 6, 3), np.uint8)[:, ::-1])  # any strides
    with pytest.raises(TypeError, match="float64"):
        check_bgr_frame(np.zeros((4, 6, 3)))
    with pytest.raises(ValueError, match=r"shape=\(4, 6\)"):
        check_bgr_frame(np.zeros((4, 6), np.uint8))
    with pytest.raises(ValueError, match=r"shape=\(4, 6, 4\)"):
        check_bgr_frame(np.zeros((4, 6, 4), np.uint8))
    with pytest.raises(TypeError, match="str"):
        check_bgr_frame("not a frame")


def test_round_trip_is_bgr_and_contiguous():
    frame = np.zeros((32, 48, 3), np.uint8)
    frame[..., 0] = 200  # blue
    frame[..., 2] = 30  # red
    video = to_video_frame(frame[:, ::-1])  # a non-contiguous input is fine
    assert (video.width, video.height, video.format.name) == (48, 32, "yuv420p")
    back = to_bgr_array(video)
    assert back.flags.c_contiguous and back.dtype == np.uint8 and back.shape == (32, 48, 3)
    assert abs(int(back[..., 0].mean()) - 200) < 6 and abs(int(back[..., 2].mean()) - 30) < 6


def test_odd_sizes_are_cropped_to_even():
    video = to_video_frame(np.zeros((33, 47, 3), np.uint8))
    assert (video.width, video.height) == (46, 32)


def test_capture_time_travels_with_the_frame():
    frame = timestamped(np.zeros((4, 4, 3), np.uint8), 12.5)
    assert capture_time(frame) == 12.5
    assert capture_time(frame[1:]) == 12.5  # views keep it
    assert capture_time(np.zeros((4, 4, 3), np.uint8)) is None


# ----------------------------------------------------------------------------- pacing


def test_pacer_without_limit_follows_capture_time():
    pacer = FramePacer()
    times = [pacer.decide(now=100 + i, captured=5 + i * 0.04).time for i in range(3)]
    assert times == pytest.approx([0.0, 0.04, 0.08])


def test_pacer_skips_to_the_frame_rate_and_tolerates_jitter():
    pacer = FramePacer(fps=10)
    sent = []
    for i in range(300):  # a 100 fps source for 3 s, with +-2 ms jitter
        t = i * 0.01 + (0.002 if i % 2 else -0.002)
        if pacer.decide(now=t).send:
            sent.append(t)
    assert 29 <= len(sent) <= 31  # 10 fps, never more (RTCBot 0.2.5 reset its counter)
    gaps = np.diff(sent)
    assert gaps.min() > 0.05
    exact = FramePacer(fps=30)
    assert all(exact.decide(now=i / 30 + (0.003 if i % 3 else 0)).send for i in range(90))


def test_pacer_without_skipping_waits_and_resyncs():
    pacer = FramePacer(fps=10, can_skip=False)
    first = pacer.decide(now=0.0)
    second = pacer.decide(now=0.01)  # too soon: it must wait for its slot, not be dropped
    assert first.send and second.send
    assert second.wait == pytest.approx(0.09)
    assert second.time == pytest.approx(0.1)
    late = pacer.decide(now=5.0)  # the source stalled: no burst of catch-up frames
    assert late.wait == 0 and pacer.resyncs == 1
    after = pacer.decide(now=5.01)
    assert after.wait == pytest.approx(0.09) and after.time > late.time


# ----------------------------------------------------------------------------- audio


def test_audio_shapes_and_types_are_converted():
    mono = to_int16_samples(np.array([0.0, 0.5, -0.5]))
    assert mono.shape == (3, 1) and mono.dtype == np.int16
    stereo = to_int16_samples(np.zeros((10, 2), np.float32))
    assert stereo.shape == (10, 2)
    ints = np.array([[1, -2], [32767, -32768]], np.int16)
    assert (to_int16_samples(ints) == ints).all()


def test_full_scale_float_does_not_wrap():
    out = to_int16_samples(np.array([1.0, -1.0, 1.5, -3.0]))[:, 0]
    assert list(out) == [32767, -32767, 32767, -32767]  # RTCBot 0.2.5: +1.0 -> -32768


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (np.zeros((10, 3)), ValueError, "3\\)"),
        (np.zeros((2, 10, 2)), ValueError, "shape=\\(2, 10, 2\\)"),
        (np.array([0.1, np.nan]), ValueError, "NaN"),
        (np.zeros(4, np.complex64), TypeError, "complex64"),
        (np.zeros(4, np.int32), TypeError, "int32"),
        (np.zeros(4, bool), TypeError, "bool"),
        ("loud", TypeError, "str"),
    ],
)
def test_bad_audio_is_refused_naming_it(data, error, words):
    with pytest.raises(error, match=words):
        to_int16_samples(data)


def test_received_s16_audio_becomes_float32_on_numpy_2():
    raw = np.array([[0, 0, 16384, -16384, 32767, -32768]], np.int16)
    frame = av.AudioFrame.from_ndarray(raw, format="s16", layout="stereo")
    frame.sample_rate = 48000
    samples, _ = audio_frame_to_float(frame)
    assert samples.dtype == np.float32 and samples.shape == (3, 2)
    assert samples[1].tolist() == [0.5, -0.5]
    assert -1.0 <= samples.min() and samples.max() < 1.0


def test_received_audio_at_another_rate_is_resampled_to_48k():
    raw = np.zeros((1, 1600), np.int16)
    frame = av.AudioFrame.from_ndarray(raw, format="s16", layout="mono")
    frame.sample_rate = 16000
    frame.pts = 0
    total, resampler = 0, None
    for _ in range(5):
        samples, resampler = audio_frame_to_float(frame, resampler)
        assert samples.dtype == np.float32 and samples.shape[1:] == (1,)
        total += len(samples)
    assert abs(total - 5 * 4800) <= 100


def test_audio_clock_skips_a_stall_once():
    clock = AudioClock(48000)
    assert clock.stamp(960, now=0.0).pts == 0
    assert clock.stamp(960, now=0.02).pts == 960
    stalled = clock.stamp(960, now=3.0)  # the source stopped for 3 s
    assert stalled.skipped > 0 and clock.skips == 1
    assert stalled.pts == pytest.approx(3.0 * 48000, abs=960)
    # RTCBot 0.2.5 never reset its counter and warned on every later frame:
    for i in range(1, 50):
        decision = clock.stamp(960, now=3.0 + i * 0.02)
        assert decision.skipped == 0
    assert clock.skips == 1


def test_audio_clock_without_skipping_keeps_every_sample_and_paces_bursts():
    clock = AudioClock(48000, can_skip=False)
    clock.stamp(960, now=0.0)
    assert clock.stamp(960, now=3.0).pts == 960  # no jump
    burst = AudioClock(48000)
    waits = [burst.stamp(960, now=0.0).wait for _ in range(20)]  # 0.4 s of audio at once
    assert waits[0] == 0 and waits[-1] == pytest.approx(19 * 0.02 - 0.1)


# ----------------------------------------------------------------------------- policies


def test_keyframe_policy_periodic_and_rate_limited():
    policy = KeyframePolicy(interval=2.0, min_gap=0.5)
    assert policy.should_force(0.0)
    policy.sent(0.0, forced=True)
    assert not policy.should_force(1.0)
    assert policy.should_force(2.0)  # periodic
    policy.sent(2.0, forced=False)
    for _ in range(5):  # a burst of picture-loss requests right after a keyframe...
        policy.request()
    assert not policy.should_force(2.1)  # ...waits for the gap...
    assert policy.should_force(2.5)  # ...and is served then, once
    policy.sent(2.5, forced=True)
    assert not policy.should_force(2.6) and policy.forced == 1


def test_bitrate_policy_follows_congestion_not_its_own_undershoot():
    policy = BitratePolicy(minimum=200_000, maximum=1_000_000)
    assert policy.target == 1_000_000
    # A still picture: we send 300 kbit/s and the receiver estimates 330: no congestion.
    assert not policy.estimate(330_000, now=0.0, actual=300_000)
    # We send 900 kbit/s and the network carries 400: go down.
    assert policy.estimate(400_000, now=1.0, actual=900_000)
    assert policy.target == 400_000
    assert not policy.estimate(5_000_000, now=2.0)  # too soon after the last change
    assert policy.estimate(5_000_000, now=3.5) and policy.target == 1_000_000
    assert not policy.estimate(950_000, now=10.0, actual=2_000_000)  # within hysteresis


# ----------------------------------------------------------------------------- jitter buffer


class Pkt:
    def __init__(self, seq: int, ts: int, marker: int = 0, data: bytes = b"x") -> None:
        self.sequence_number = seq & 0xFFFF
        self.timestamp = ts
        self.marker = marker
        self._data = data


def test_frame_released_at_its_marker_packet():
    jb = MarkerJitterBuffer(capacity=64)
    assert jb.add(Pkt(10, 1000, 0, b"a")) == (False, None)
    assert jb.add(Pkt(11, 1000, 0, b"b"))[1] is None
    lost, frame = jb.add(Pkt(12, 1000, 1, b"c"))
    assert not lost and frame.data == b"abc" and frame.timestamp == 1000
    # aiortc's buffer would have waited for packet 13 (the next frame) to release it.


def test_reordered_packets_and_the_old_rule_without_marker():
    jb = MarkerJitterBuffer(capacity=64)
    assert jb.add(Pkt(1, 10, 0, b"a"))[1] is None
    assert jb.add(Pkt(3, 10, 1, b"c"))[1] is None  # hole at 2
    assert jb.add(Pkt(2, 10, 0, b"b"))[1].data == b"abc"
    # no marker at all: the next frame's first packet completes the frame
    assert jb.add(Pkt(4, 20, 0, b"d"))[1] is None
    assert jb.add(Pkt(5, 30, 0, b"e"))[1].data == b"d"
    assert jb.add(Pkt(3, 10, 1, b"late")) == (False, None)  # late duplicate ignored


def test_sequence_numbers_wrap():
    jb = MarkerJitterBuffer(capacity=64)
    assert jb.add(Pkt(0xFFFF, 1, 0, b"a"))[1] is None
    assert jb.add(Pkt(0x10000, 1, 1, b"b"))[1].data == b"ab"
    assert jb.add(Pkt(1, 2, 1, b"c"))[1].data == b"c"


def test_a_hole_that_is_never_filled_does_not_stall_the_stream():
    jb = MarkerJitterBuffer(capacity=64, stall_packets=8)
    jb.add(Pkt(0, 0, 1))
    jb.add(Pkt(1, 1, 0))  # frame 1 loses packet 2 for good
    released = []
    lost_reported = False
    for i, seq in enumerate(range(3, 20)):  # frames of one packet each
        lost, frame = jb.add(Pkt(seq, 2 + i, 1, bytes([seq])))
        lost_reported |= lost
        if frame is not None:
            released.append(frame.data[0])
    assert lost_reported and jb.stalls == 1
    assert released and released[-1] == 19  # caught up with the newest frame
    assert released == sorted(released)


def test_packets_far_ahead_reset_or_drop_old_frames():
    jb = MarkerJitterBuffer(capacity=16, stall_packets=8)
    jb.add(Pkt(0, 0, 0))
    lost, _ = jb.add(Pkt(40, 5, 1, b"z"))  # beyond capacity: the old partial frame goes
    assert lost
    lost, _ = jb.add(Pkt(40 - 200, 9, 1))  # far behind: a restarted stream
    assert lost and jb.resets == 1


# ----------------------------------------------------------------------------- encoder


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_encoder_keyframes_on_request(codec):
    encoder = VideoEncoder(VideoEncoderSettings(codec=codec))
    frame = np.zeros((120, 160, 3), np.uint8)
    kinds = []
    for i in range(6):
        frame[:, : (i + 1) * 10] = 255
        packets = encoder.encode(
            to_video_frame(frame), pts=i * 3000, keyframe=i in (0, 4), bitrate=300_000
        )
        assert len(packets) == 1 and packets[0].pts == i * 3000
        kinds.append(bool(packets[0].is_keyframe))
    assert kinds == [True, False, False, False, True, False]
    assert encoder.encode(to_video_frame(frame), 6 * 3000, False, 200_000)[0].is_keyframe
    assert encoder.rebuilds == 2  # a new bitrate rebuilds the encoder


def test_settings_validation_names_the_value():
    with pytest.raises(ValueError, match="'AV1'"):
        VideoEncoderSettings(codec="AV1")
    with pytest.raises(ValueError, match="max_bitrate"):
        VideoEncoderSettings(max_bitrate=5)
    with pytest.raises(ValueError, match="keyframe_interval"):
        VideoEncoderSettings(keyframe_interval=0)
    assert VideoEncoderSettings(codec="h264").codec == "H264"
    assert VideoEncoderSettings().bitrate_for(640, 480) == 921_600
