"""rtcbot.js media between two browser peers: Chromium's fake camera and microphone sent with
putSubscription (with a stream), received with subscribe (one call per track, several tracks),
low-latency playout, and offerToReceive on the offerer."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_answerer_sends_camera_and_mic_to_an_offerer_that_asks(page):
    result = await page.evaluate(
        """async () => {
            const media = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
            const c1 = new rtcbot.RTCConnection(true, {iceServers: []});   // the viewer
            const c2 = new rtcbot.RTCConnection(true, {iceServers: []});   // the "robot"
            window.c1 = c1; window.c2 = c2;
            c2.video.putSubscription(media.getVideoTracks()[0]);
            c2.audio.putSubscription(media.getAudioTracks()[0]);
            const videos = [], audios = [];
            c1.video.subscribe((stream, track) => videos.push({stream, track}));
            c1.audio.subscribe((stream) => audios.push(stream));
            await c1.setRemoteDescription(await c2.getLocalDescription(await c1.getLocalDescription()));
            await c1.onReady();
            const el = document.createElement("video");
            el.muted = true; el.autoplay = true; el.playsInline = true;
            document.body.appendChild(el);
            el.srcObject = videos[0].stream;
            await el.play();
            await new Promise((resolve) => {
                const check = () => el.videoWidth > 0 ? resolve() : el.requestVideoFrameCallback(check);
                el.requestVideoFrameCallback(check);
            });
            // a late subscriber gets the tracks already received
            const late = [];
            c1.video.subscribe((s) => late.push(s));
            const receivers = c1.peerConnection.getReceivers().filter((r) => r.track.kind === "video");
            const stats = await c1.stats();
            let afterErr;
            try { c2.video.putSubscription(media.getVideoTracks()[0]); } catch (e) { afterErr = e.name; }
            return {
                videos: videos.length, audios: audios.length,
                videoTracksInStream: videos[0].stream.getVideoTracks().length,
                sameTrack: videos[0].stream.getVideoTracks()[0] === videos[0].track,
                width: el.videoWidth, late: late.length,
                jitterBufferTarget: receivers.map((r) => r.jitterBufferTarget),
                inbound: stats.video.inbound.length, outboundVideo: (await c2.stats()).video.outbound.length,
                afterErr, streams: c1.video.streams.length,
            };
        }"""
    )
    assert result["videos"] == 1 and result["audios"] == 1
    assert result["videoTracksInStream"] == 1 and result["sameTrack"] is True
    assert result["width"] > 0
    assert result["late"] == 1 and result["streams"] == 1
    assert result["jitterBufferTarget"] == [0]
    assert result["inbound"] == 1 and result["outboundVideo"] == 1
    assert result["afterErr"] == "RTCBotError"


async def test_several_video_tracks_each_get_their_own_call_and_stream(page):
    result = await page.evaluate(
        """async () => {
            const camera = (await navigator.mediaDevices.getUserMedia({video: true})).getVideoTracks()[0];
            const canvas = document.createElement("canvas");
            canvas.width = 64; canvas.height = 48;
            const ctx = canvas.getContext("2d");
            window.drawTimer = setInterval(() => { ctx.fillStyle = "#" + Math.floor(Math.random() * 4096).toString(16).padStart(3, "0"); ctx.fillRect(0, 0, 64, 48); }, 30);
            const drawn = canvas.captureStream(30).getVideoTracks()[0];
            const c1 = new rtcbot.RTCConnection(true, {iceServers: []});
            const c2 = new rtcbot.RTCConnection(true, {iceServers: []});
            window.c1 = c1; window.c2 = c2;
            // the sender is the offerer this time; both tracks in ONE stream
            const both = new MediaStream([camera, drawn]);
            c1.video.putSubscription(both);
            const got = [];
            c2.video.subscribe((stream, track) => got.push({stream, track}));
            await c1.setRemoteDescription(await c2.getLocalDescription(await c1.getLocalDescription()));
            await c2.onReady();
            clearInterval(window.drawTimer);
            return {calls: got.length,
                    distinctStreams: new Set(got.map((g) => g.stream)).size,
                    eachOneVideo: got.every((g) => g.stream.getVideoTracks().length === 1),
                    distinctTracks: new Set(got.map((g) => g.track.id)).size};
        }"""
    )
    assert result == {"calls": 2, "distinctStreams": 2, "eachOneVideo": True, "distinctTracks": 2}


async def test_remote_gets_streams_zero_from_put_subscription(page):
    # putSubscription adds the track WITH a stream: the receiving side's track event has
    # streams[0] (RTCBot 0.2.5 added it without one).
    result = await page.evaluate(
        """async () => {
            const track = (await navigator.mediaDevices.getUserMedia({audio: true})).getAudioTracks()[0];
            const c1 = new rtcbot.RTCConnection(true, {iceServers: []});
            const c2 = new rtcbot.RTCConnection(true, {iceServers: []});
            window.c1 = c1; window.c2 = c2;
            c1.audio.putSubscription(track);
            const seen = [];
            c2.peerConnection.addEventListener("track", (e) => seen.push(e.streams.length));
            await c1.setRemoteDescription(await c2.getLocalDescription(await c1.getLocalDescription()));
            return seen;
        }"""
    )
    assert result == [1]
