"""Sound: :class:`Microphone` and :class:`Speaker` (through ``sounddevice``, i.e. PortAudio), and
:class:`Tone`, a microphone that needs no hardware.

Audio is ``float32`` numpy arrays of shape ``(samples, channels)`` with values in [-1, 1], at
48 kHz by default. Every queue is bounded and drops the *oldest* audio when full, so a reader
that stops reading costs a fixed amount of memory and, when it reads again, hears the present
rather than the past. See ``docs/guides/sound.md`` for why sounddevice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from typing import Any

import numpy as np

from ..base.errors import SubscriptionClosed
from ..base.subscriptions import QueueSubscription, describe
from ..base.thread import ThreadedSubscriptionConsumer, ThreadedSubscriptionProducer
from .sources import DeviceError, _check_size, _finish_at_exit

__all__ = ["Microphone", "Speaker", "Tone", "audio_backlog"]

#: Seconds of audio a subscription keeps for a reader that does not keep up.
BACKLOG_SECONDS = 2.0


def audio_backlog(samplerate: int, blocksize: int, seconds: float = BACKLOG_SECONDS) -> Any:
    """The default subscription class of an audio producer: a :class:`QueueSubscription` of
    about ``seconds`` of audio that drops the oldest block when full."""
    blocks = max(2, math.ceil(seconds * samplerate / blocksize))
    return functools.partial(QueueSubscription, blocks, "drop_oldest")


def _import_sounddevice(what: str) -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        raise ImportError(
            f'{what} needs sounddevice and PortAudio: pip install "rtcbot[audio]" (on Debian '
            f"and Raspberry Pi OS also: sudo apt install libportaudio2). ({exc})"
        ) from exc
    return sounddevice


def _check_rate(samplerate: Any) -> int:
    return _check_size("samplerate", samplerate, 1000)


def _default_channels(sd: Any, device: Any, kind: str) -> int:
    try:
        info = sd.query_devices(device, kind)
    except Exception as exc:
        raise DeviceError(f"no {kind} sound device {device!r}: {exc}") from exc
    available = int(info[f"max_{kind}_channels"])
    if available < 1:
        raise DeviceError(f"sound device {info['name']!r} has no {kind} channels")
    return min(2, available)


class Microphone(ThreadedSubscriptionProducer):
    """Records from a sound input (RTCBot 0.2.5 API; PortAudio through ``sounddevice``).

    Produces ``float32`` arrays ``(blocksize, channels)`` in [-1, 1] at ``samplerate`` Hz.
    ``channels`` defaults to the device's, at most 2. ``device`` is a sounddevice device: None
    for the default input, an index, or part of a name (``python -m sounddevice`` lists
    them). Each subscription keeps at most about 2 s of audio, dropping the oldest (counted in
    its ``statistics()``); ``overflows`` counts blocks the sound card lost because the program
    was late. ``loop`` binds the microphone to that event loop at once.

    A device that cannot be opened, or that stops, reaches ``onError`` as a
    :class:`DeviceError` and closes the microphone.
    """

    def __init__(
        self,
        samplerate: int = 48000,
        channels: int | None = None,
        blocksize: int = 1024,
        device: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self._sd = _import_sounddevice("Microphone")
        self.samplerate = _check_rate(samplerate)
        self.channels = None if channels is None else _check_size("channels", channels)
        self.blocksize = _check_size("blocksize", blocksize)
        self.device = device
        self.overflows = 0
        backlog = audio_backlog(self.samplerate, self.blocksize)
        super().__init__(backlog, logger, loop, backlog=backlog.args[0])
        _finish_at_exit(self)

    @staticmethod
    def available(device: Any = None) -> bool:
        """True if sounddevice is installed and ``device`` (default: the default input) exists."""
        try:
            sd = _import_sounddevice("Microphone")
            return sd.query_devices(device, "input")["max_input_channels"] > 0
        except Exception:
            return False

    def _producer(self) -> None:
        sd = self._sd
        channels = self.channels or _default_channels(sd, self.device, "input")
        self.channels = channels
        put = self._put_nowait

        def callback(indata: np.ndarray, frames: int, when: Any, status: Any) -> None:
            if status.input_overflow:
                self.overflows += 1
            put(indata.copy())

        try:
            stream = sd.InputStream(
                samplerate=self.samplerate,
                channels=channels,
                blocksize=self.blocksize,
                dtype="float32",
                device=self.device,
                callback=callback,
            )
        except Exception as exc:
            raise DeviceError(f"cannot open microphone {self.device!r}: {exc}") from exc
        try:
            stream.start()
            self._setReady(True)
            while not self._closing.wait(0.25):
                if not stream.active:
                    raise DeviceError(f"microphone {self.device!r} stopped")
        finally:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)


def _as_audio(data: Any) -> np.ndarray:
    """``data`` as a float32 (samples, channels) array; ValueError naming it if impossible."""
    arr = np.asarray(data)
    if arr.dtype.kind != "f" or arr.ndim not in (1, 2) or arr.size == 0:
        raise ValueError(
            f"expected float audio in [-1, 1] shaped (samples,) or (samples, channels), got "
            f"{describe(data)}"
        )
    if arr.ndim == 1:
        arr = arr[:, None]
    return arr


class Speaker(ThreadedSubscriptionConsumer):
    """Plays sound (RTCBot 0.2.5 API; PortAudio through ``sounddevice``).

    Input: ``float32`` (or any float) arrays ``(samples, channels)`` or ``(samples,)`` in
    [-1, 1] at ``samplerate`` Hz, given to ``put_nowait`` or read from a source set with
    ``putSubscription`` (such as a :class:`Microphone`). Louder values are clipped. Mono input
    plays on every channel; extra input channels are dropped. ``channels`` defaults to the
    device's, at most 2; ``device`` as for :class:`Microphone`.

    At most ``backlog`` blocks wait to be played (default: about 0.5 s of 1024-sample
    blocks); when full, the oldest waiting block is dropped (``statistics()["dropped"]``), so
    the delay stays bounded. ``put_nowait`` of something that is not float audio raises
    ``ValueError`` naming it. ``underflows`` counts the times the sound card ran dry.

    A device that cannot be opened or fails reaches ``onError`` as a :class:`DeviceError` and
    closes the speaker.
    """

    def __init__(
        self,
        samplerate: int = 48000,
        channels: int | None = None,
        blocksize: int = 1024,
        device: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        backlog: int = 24,
        logger: logging.Logger | None = None,
    ) -> None:
        self._sd = _import_sounddevice("Speaker")
        self.samplerate = _check_rate(samplerate)
        self.channels = None if channels is None else _check_size("channels", channels)
        self.blocksize = _check_size("blocksize", blocksize)
        self.device = device
        self.underflows = 0
        self.played = 0
        # A full backlog drops its oldest block (audio), instead of refusing the new one.
        super().__init__(QueueSubscription, logger, loop, backlog=_check_size("backlog", backlog),
                         overflow="drop_oldest")
        _finish_at_exit(self)

    def _wakeAtExit(self) -> None:
        # The interpreter is ending: wake a worker blocked waiting for sound to play.
        self._endWorkerInput()

    @staticmethod
    def available(device: Any = None) -> bool:
        """True if sounddevice is installed and ``device`` (default: the default output)
        exists."""
        try:
            sd = _import_sounddevice("Speaker")
            return sd.query_devices(device, "output")["max_output_channels"] > 0
        except Exception:
            return False

    def put_nowait(self, data: np.ndarray) -> None:
        """Queue ``data`` to be played; never blocks. Raises ``ValueError`` if it is not float
        audio, :class:`SubscriptionClosed` after close."""
        _as_audio(data)
        super().put_nowait(data)

    def _fit(self, data: Any, channels: int) -> np.ndarray:
        arr = _as_audio(data)
        if arr.shape[1] != channels:
            if arr.shape[1] == 1:
                arr = np.repeat(arr, channels, axis=1)
            elif arr.shape[1] > channels:
                arr = arr[:, :channels]
            else:
                pad = np.zeros((arr.shape[0], channels - arr.shape[1]), arr.dtype)
                arr = np.concatenate((arr, pad), axis=1)
        return np.clip(arr, -1.0, 1.0).astype(np.float32, copy=False)

    def _consumer(self) -> None:
        sd = self._sd
        channels = self.channels or _default_channels(sd, self.device, "output")
        self.channels = channels
        try:
            stream = sd.OutputStream(
                samplerate=self.samplerate,
                channels=channels,
                blocksize=self.blocksize,
                dtype="float32",
                device=self.device,
            )
        except Exception as exc:
            raise DeviceError(f"cannot open speaker {self.device!r}: {exc}") from exc
        try:
            stream.start()
            self._setReady(True)
            while True:
                try:
                    data = self._get()
                except SubscriptionClosed:
                    if self._shouldClose:
                        return
                    continue  # the putSubscription source ended: play put_nowait data
                try:
                    block = self._fit(data, channels)
                except ValueError as exc:
                    self._log.error("not played: %s", exc)
                    continue
                try:
                    if stream.write(block):
                        self.underflows += 1
                except Exception as exc:
                    raise DeviceError(f"speaker {self.device!r} failed: {exc}") from exc
                self.played += len(block)
        finally:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)


class Tone(ThreadedSubscriptionProducer):
    """A microphone that needs no hardware: a sine wave of ``frequency`` Hz.

    Produces ``float32`` arrays ``(blocksize, channels)`` with amplitude ``amplitude`` at
    ``samplerate`` Hz, in real time (one block every ``blocksize / samplerate`` seconds), with
    no jump in phase between blocks. Same subscriptions as :class:`Microphone` (about 2 s kept,
    oldest dropped). ``duration`` (seconds) ends the stream after that much sound (readers then
    get ``SubscriptionClosed``); default: until closed.
    """

    def __init__(
        self,
        frequency: float = 440.0,
        amplitude: float = 0.5,
        samplerate: int = 48000,
        channels: int = 1,
        blocksize: int = 960,
        *,
        duration: float | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.samplerate = _check_rate(samplerate)
        if not isinstance(frequency, (int, float)) or not 0 < frequency < self.samplerate / 2:
            raise ValueError(
                f"frequency must be between 0 and samplerate/2 = {self.samplerate / 2} Hz, got "
                f"{frequency!r}"
            )
        if not isinstance(amplitude, (int, float)) or not 0 <= amplitude <= 1:
            raise ValueError(f"amplitude must be in [0, 1], got {amplitude!r}")
        if duration is not None and not (isinstance(duration, (int, float)) and duration >= 0):
            raise ValueError(f"duration must be a number of seconds >= 0, got {duration!r}")
        self.frequency = float(frequency)
        self.amplitude = float(amplitude)
        self.channels = _check_size("channels", channels)
        self.blocksize = _check_size("blocksize", blocksize)
        self.duration = duration
        backlog = audio_backlog(self.samplerate, self.blocksize)
        super().__init__(backlog, logger, None, backlog=backlog.args[0])

    def _producer(self) -> None:
        step = 2 * math.pi * self.frequency / self.samplerate
        ramp = np.arange(self.blocksize) * step
        phase = 0.0
        period = self.blocksize / self.samplerate
        total = None if self.duration is None else round(self.duration * self.samplerate)
        made = 0
        closing = self._closing
        start = time.monotonic()
        self._setReady(True)
        while total is None or made < total:
            delay = start + made / self.samplerate - time.monotonic()
            if delay < -10 * period:  # far behind (the machine stalled): do not burst
                start -= delay
                delay = 0
            if delay > 0 and closing.wait(delay):
                return
            if closing.is_set():
                return
            n = self.blocksize if total is None else min(self.blocksize, total - made)
            wave = (self.amplitude * np.sin(phase + ramp[:n])).astype(np.float32)
            block = np.repeat(wave[:, None], self.channels, axis=1)
            phase = (phase + n * step) % (2 * math.pi)
            made += n
            self._put_nowait(block)
