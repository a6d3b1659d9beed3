"""The streaming tutorial (examples/streaming), run as a user would: the robot's test pattern
and tone play in the page, and the browser's (fake) camera and microphone reach Python."""

from __future__ import annotations

import pytest

from support.browser import wait_for_js
from support.pulse import pulseaudio  # noqa: F401 -- a fixture
from support.tutorial import (
    Program,
    check_live_pattern,
    open_tutorial_page,
    watch_video,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Without PULSE_SERVER (set by the audio tests' fixture) this machine has no sound device, so
# the programs pick their hardware-free stand-ins: TestPattern and Tone.
NO_SOUND = ("PULSE_SERVER",)

# The page's incoming audio, from WebRTC's statistics: samples received and the level (0..1).
AUDIO_IN = """async () => {
    const stats = await conn.peerConnection.getStats();
    for (const s of stats.values()) {
        if (s.type === "inbound-rtp" && s.kind === "audio")
            return {samples: s.totalSamplesReceived || 0, level: s.audioLevel || 0,
                    energy: s.totalAudioEnergy || 0};
    }
    return null;
}"""


async def test_skeleton_connects(context):
    async with Program("streaming/skeleton.py") as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        await wait_for_js(page, "conn.ready")
        assert not page.errors


async def test_video_plays_the_python_test_pattern_live(context):
    async with Program("streaming/video.py", drop_env=NO_SOUND) as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        samples = await watch_video(page, 1.5)
        check_live_pattern(samples, 320, 240)
        assert await page.evaluate("document.querySelector('video').paused") is False
        assert not page.errors


async def test_audio_and_video_arrive(context):
    async with Program("streaming/audiovideo.py", drop_env=NO_SOUND) as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        await page.click("body")  # the user's click that lets the page play sound
        samples = await watch_video(page, 1.0)
        check_live_pattern(samples, 320, 240)
        tracks = await page.evaluate(
            "document.querySelector('audio').srcObject.getAudioTracks().map(t => t.readyState)"
        )
        assert tracks == ["live"]
        # the tone is heard: half a second more of samples arrives, and it is not silence
        before = await page.evaluate(AUDIO_IN) or {"samples": 0, "energy": 0}
        await wait_for_js(
            page,
            f"""async () => {{
                const now = await ({AUDIO_IN})();
                return now !== null && now.samples > {before["samples"]} + 24000
                    && now.energy > {before["energy"]} && now.level > 0.05;
            }}""",
            timeout=15,
        )
        assert not page.errors


async def test_browser_camera_and_microphone_reach_python(context, pulseaudio):  # noqa: F811
    async with Program("streaming/browser_audiovideo.py") as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        # Chromium's fake camera (640x480) is shown by Python's display stand-in, and its
        # fake microphone's beeps are played by the Speaker (into PulseAudio's null sink).
        while True:
            match = await program.stdout.expect(
                r"^video: (\d+) frames, sound played: ([0-9.]+) s$", timeout=15
            )
            frames, sound = int(match.group(1)), float(match.group(2))
            if frames >= 30 and sound >= 1.0:
                break
        assert not page.errors
