"""Audio samples: checking and converting what users send and what the network delivers, and
the clock of an outgoing audio stream. Plain code: numpy and PyAV in, numpy and decisions out.

The rule for outgoing audio (:func:`to_int16_samples`): a numpy array of shape ``(samples,)``
(mono) or ``(samples, channels)`` with 1 or 2 channels, either floating point in [-1, 1]
(values outside are clipped; +1.0 becomes 32767, never wraps) or ``int16``. Anything else -- 3 or
more channels, NaN or infinite samples, complex, bool, other integer types -- is refused with an
error naming the value. Received audio (:func:`audio_frame_to_float`) is ``float32``,
``(samples, channels)``, 48 kHz, in [-1, 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "AudioClock",
    "AudioClockDecision",
    "audio_frame_to_float",
    "check_audio",
    "to_int16_samples",
]

SAMPLE_RATE = 48000


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"numpy array shape={value.shape} dtype={value.dtype}"
    return f"{type(value).__name__} {repr(value)[:60]}"


def check_audio(data: Any) -> np.ndarray:
    """Return ``data`` as a 2-D ``(samples, channels)`` array view if it is valid audio (see the
    module docstring), else raise ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong
    shape, NaN or infinite samples), naming the value. Does not convert the sample format."""
    if not isinstance(data, np.ndarray):
        if isinstance(data, (list, tuple)):
            data = np.asarray(data)
        else:
            raise TypeError(
                f"audio must be a numpy array of shape (samples,) or (samples, channels), got "
                f"{_describe(data)}"
            )
    if data.dtype == np.int16 or data.dtype.kind == "f":
        pass
    else:
        raise TypeError(f"audio samples must be float (in [-1, 1]) or int16, got {_describe(data)}")
    if data.ndim == 1:
        data = data[:, None]
    elif data.ndim != 2:
        raise ValueError(
            f"audio must have shape (samples,) or (samples, channels), got {_describe(data)}"
        )
    if data.shape[1] not in (1, 2):
        raise ValueError(
            f"audio must be mono or stereo (1 or 2 channels in shape (samples, channels)), got "
            f"{_describe(data)}"
        )
    if data.dtype.kind == "f" and data.size and not np.isfinite(data).all():
        raise ValueError(
            f"audio samples must be finite numbers, got NaN or inf in {_describe(data)}"
        )
    return data


def to_int16_samples(data: Any) -> np.ndarray:
    """Convert valid audio (see the module docstring) to a C-contiguous ``int16`` array of shape
    ``(samples, channels)``. Floats are clipped to [-1, 1] and scaled by 32767 (so +1.0 is
    32767 and -1.0 is -32767: nothing wraps)."""
    data = check_audio(data)
    if data.dtype == np.int16:
        return np.ascontiguousarray(data)
    scaled = np.clip(data, -1.0, 1.0) * 32767.0
    return np.ascontiguousarray(np.rint(scaled).astype(np.int16))


def audio_frame_to_float(frame: Any, resampler: Any = None) -> tuple[np.ndarray, Any]:
    """A decoded PyAV ``AudioFrame`` as ``float32`` ``(samples, channels)`` at 48 kHz in
    [-1, 1).

    Returns ``(array, resampler)``: frames that are not 48 kHz ``s16``/``flt`` go through a PyAV
    resampler, created on the first such frame; pass the returned one back for the next frame
    of the same stream.
    """
    import av

    channels = len(frame.layout.channels)
    name = frame.format.name
    if frame.sample_rate == SAMPLE_RATE and name in ("s16", "flt"):
        raw = frame.to_ndarray()
        samples = raw.reshape(-1, channels)
        if name == "s16":
            return samples.astype(np.float32) * np.float32(1.0 / 32768.0), resampler
        return np.ascontiguousarray(samples, dtype=np.float32), resampler
    if resampler is None:
        resampler = av.AudioResampler(format="flt", layout=frame.layout.name, rate=SAMPLE_RATE)
    parts = [f.to_ndarray().reshape(-1, channels) for f in resampler.resample(frame)]
    if not parts:
        return np.zeros((0, channels), dtype=np.float32), resampler
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32), resampler


@dataclass(frozen=True)
class AudioClockDecision:
    """What :meth:`AudioClock.stamp` says about one block of samples.

    * ``pts`` -- the block's timestamp in samples from the stream's start.
    * ``wait`` -- seconds to wait before sending it (the source is ahead of real time).
    * ``skipped`` -- samples of timeline skipped before this block (the source fell behind and
      skipping is allowed: the receiver hears a gap instead of ever-growing delay).
    """

    pts: int
    wait: float
    skipped: int


class AudioClock:
    """Timestamps of one outgoing audio stream (plain: give it ``now``, seconds, monotonic).

    A block's pts is the count of samples sent before it. Real time runs from the first block.
    If the source is more than ``max_behind`` seconds behind real time (it stalled), with
    ``can_skip`` the timeline jumps forward to the present -- the counter itself is reset, so
    this happens (and is counted in ``skips``) once per stall, not on every later block (RTCBot
    0.2.5's defect). If the source is more than ``max_ahead`` seconds ahead of real time (a file
    or a backlog pushed at once), the block waits until it is due, so the receiver is not
    flooded.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        can_skip: bool = True,
        max_behind: float = 1.0,
        max_ahead: float = 0.1,
    ) -> None:
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
        self.sample_rate = int(sample_rate)
        self.can_skip = bool(can_skip)
        self.max_behind = max_behind
        self.max_ahead = max_ahead
        self._start: float | None = None
        self._samples = 0
        self.skips = 0
        self.skipped_samples = 0

    def stamp(self, samples: int, now: float) -> AudioClockDecision:
        """Timestamp a block of ``samples`` samples offered at ``now``."""
        if self._start is None:
            self._start = now
        skipped = 0
        due = self._start + self._samples / self.sample_rate
        if self.can_skip and now - due > self.max_behind:
            skipped = round((now - due) * self.sample_rate)
            self._samples += skipped
            self.skips += 1
            self.skipped_samples += skipped
            due = now
        wait = due - now - self.max_ahead if due - now > self.max_ahead else 0.0
        pts = self._samples
        self._samples += samples
        return AudioClockDecision(pts, wait, skipped)
