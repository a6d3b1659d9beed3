"""Sound: the Tone source (no hardware), and Microphone and Speaker for real, through a PulseAudio
null sink (tests marked ``audio``): a tone played by Speaker is recorded by Microphone from the
sink's monitor and recognised by its frequency."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import numpy as np
import pytest

from rtcbot.base.errors import SubscriptionClosed
from rtcbot.base.subscriptions import QueueSubscription
from rtcbot.devices.audio import Microphone, Speaker, Tone
from rtcbot.devices.sources import DeviceError
from rtcbot.testing import check_consumer, check_producer
from support.pulse import pulseaudio  # noqa: F401  (the fixture)

RATE = 48000


async def bounded(awaitable, seconds: float = 10):
    async with asyncio.timeout(seconds):
        return await awaitable


def peak_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.argmax(spectrum) * rate / len(mono))


async def read_all(sub) -> list[np.ndarray]:
    blocks = []
    while True:
        try:
            blocks.append(await bounded(sub.get()))
        except SubscriptionClosed:
            return blocks


# ----------------------------------------------------------------------- Tone


async def test_tone_is_a_continuous_sine_of_its_frequency():
    tone = Tone(1000, amplitude=0.25, channels=2, blocksize=480, duration=0.25)
    blocks = await read_all(tone.subscribe())
    await bounded(tone)
    assert all(b.dtype == np.float32 and b.shape == (480, 2) for b in blocks)
    samples = np.concatenate(blocks)
    assert len(samples) == RATE // 4
    assert np.array_equal(samples[:, 0], samples[:, 1])
    expected = 0.25 * np.sin(2 * np.pi * 1000 * np.arange(len(samples)) / RATE)
    np.testing.assert_allclose(samples[:, 0], expected, atol=1e-5)  # no jump between blocks
    assert peak_frequency(samples) == pytest.approx(1000, abs=5)


async def test_tone_duration_ends_with_a_short_block():
    tone = Tone(440, blocksize=960, duration=0.03)
    blocks = await read_all(tone.subscribe())
    assert [len(b) for b in blocks] == [960, 480]


async def test_tone_is_a_producer():
    await check_producer(lambda: Tone(440, blocksize=96))


def test_tone_keeps_a_bounded_backlog():
    tone = Tone(440, blocksize=960)
    try:
        sub = tone.subscribe()
        assert isinstance(sub, QueueSubscription)
        assert sub.overflow == "drop_oldest"
        assert sub.maxsize * 960 / RATE == pytest.approx(2.0, abs=0.05)
    finally:
        tone.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"frequency": 0}, {"frequency": 30000}, {"amplitude": 1.5}, {"channels": 0},
     {"blocksize": 0}, {"samplerate": 10}, {"duration": -1}],
)
def test_tone_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        Tone(**kwargs)


# ----------------------------------------------------------------------- without a sound server


def run_without(module: str, code: str) -> str:
    script = f"import sys\nsys.modules[{module!r}] = None\n{code}"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    return result.stdout + result.stderr


def test_microphone_without_sounddevice_names_the_extra():
    out = run_without("sounddevice", (
        "import rtcbot\n"
        "for cls in (rtcbot.Microphone, rtcbot.Speaker):\n"
        "    try:\n"
        "        cls()\n"
        "    except ImportError as exc:\n"
        "        print('ImportError:', exc)\n"
    ))
    assert out.count('pip install "rtcbot[audio]"') == 2, out


# ----------------------------------------------------------------------- through PulseAudio




@pytest.mark.audio
@pytest.mark.usefixtures("pulseaudio")
async def test_a_tone_played_is_heard_by_the_microphone():
    microphone = Microphone()
    speaker = Speaker()
    tone = Tone(1000, amplitude=0.5, duration=1.0)
    try:
        heard = microphone.subscribe()
        await bounded(microphone.onReady())
        await bounded(speaker.onReady())
        speaker.putSubscription(tone)
        blocks = []
        loud = 0
        while loud < 20:  # 20 blocks (0.4 s) with the tone in them
            block = await bounded(heard.get())
            assert block.dtype == np.float32 and block.shape == (1024, 2)
            blocks.append(block)
            loud = loud + 1 if np.abs(block).max() > 0.25 else 0
        samples = np.concatenate(blocks[-20:])
        assert peak_frequency(samples) == pytest.approx(1000, abs=10)
        assert np.abs(samples).max() <= 1.0
    finally:
        for device in (microphone, speaker, tone):
            device.close()
        await bounded(asyncio.gather(microphone, speaker, tone))


@pytest.mark.audio
@pytest.mark.usefixtures("pulseaudio")
async def test_speaker_plays_put_nowait_blocks_louder_and_clipped():
    # The "louder audio" tutorial: multiply by 5 and put_nowait; values beyond 1 are clipped.
    microphone = Microphone(channels=1)
    speaker = Speaker()
    tone = Tone(600, amplitude=0.5, channels=1, duration=1.0)

    @tone.subscribe
    def louder(data):
        if speaker.ready:
            speaker.put_nowait(data * 5)

    try:
        heard = microphone.subscribe()
        await bounded(microphone.onReady())
        blocks = []
        loud = 0
        while loud < 20:
            block = await bounded(heard.get())
            blocks.append(block)
            loud = loud + 1 if np.abs(block).max() > 0.9 else 0
        samples = np.concatenate(blocks[-20:])
        assert samples.shape[1] == 1
        assert np.abs(samples).max() <= 1.0 + 1e-6
        assert peak_frequency(samples) == pytest.approx(600, abs=10)
    finally:
        for device in (microphone, speaker, tone):
            device.close()
        await bounded(asyncio.gather(microphone, speaker, tone))


@pytest.mark.audio
@pytest.mark.usefixtures("pulseaudio")
async def test_microphone_is_a_producer():
    await check_producer(Microphone)


@pytest.mark.audio
@pytest.mark.usefixtures("pulseaudio")
async def test_speaker_is_a_consumer():
    async def played(speaker):
        return [None] * (speaker.played // 480)

    await check_consumer(
        Speaker, sample=lambda i: np.zeros((480, 2), np.float32), received=played
    )


@pytest.mark.audio
@pytest.mark.usefixtures("pulseaudio")
async def test_microphone_subscriptions_are_bounded():
    microphone = Microphone(blocksize=1024)
    try:
        sub = microphone.subscribe()
        assert isinstance(sub, QueueSubscription) and sub.overflow == "drop_oldest"
        assert sub.maxsize == 94  # about 2 s of 1024-sample blocks
    finally:
        microphone.close()
        await bounded(microphone)


@pytest.mark.audio
@pytest.mark.usefixtures("pulseaudio")
async def test_speaker_backlog_drops_the_oldest():
    speaker = Speaker(backlog=4)
    try:
        await bounded(speaker.onReady())
        for _ in range(50):  # far more than it can play at once
            speaker.put_nowait(np.zeros((1024, 2), np.float32))
        stats = speaker.statistics()
        assert stats["backlog"] <= 4
        assert stats["dropped"] >= 50 - 4 - 2
    finally:
        speaker.close()
        await bounded(speaker)


@pytest.mark.audio
@pytest.mark.usefixtures("pulseaudio")
@pytest.mark.parametrize(
    "bad", [np.zeros((10, 2), np.int16), "noise", np.zeros((2, 2, 2), np.float32)],
    ids=["int16", "str", "3-d"],
)
async def test_speaker_refuses_what_is_not_float_audio(bad):
    speaker = Speaker()
    try:
        with pytest.raises(ValueError, match="expected float audio"):
            speaker.put_nowait(bad)
    finally:
        speaker.close()
        await bounded(speaker)


@pytest.mark.audio
@pytest.mark.usefixtures("pulseaudio")
@pytest.mark.parametrize("cls", ["Microphone", "Speaker"])
async def test_a_missing_sound_device_reaches_on_error(cls, caplog):
    caplog.set_level(logging.CRITICAL)
    device = {"Microphone": Microphone, "Speaker": Speaker}[cls](device="no such card")
    error = await bounded(device.onError())
    await bounded(device)
    assert isinstance(error, DeviceError) and "no such card" in str(error)
    assert device.closed
