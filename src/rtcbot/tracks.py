"""RTCBot 0.2.5's import path for the media tracks: ``from rtcbot.tracks import VideoSender``.

The classes live in :mod:`rtcbot.connection._media`:

* :class:`VideoSender` / :class:`AudioSender` -- one outgoing track each (consumers of frames /
  audio blocks); ``.videoStreamTrack`` / ``.audioStreamTrack`` is the aiortc track.
* :class:`VideoReceiver` / :class:`AudioReceiver` -- one incoming track each (producers), as
  delivered by ``conn.video.onTrack()`` / ``conn.audio.onTrack()``.
"""

from .connection._media import AudioReceiver, AudioSender, VideoReceiver, VideoSender

__all__ = ["AudioReceiver", "AudioSender", "VideoReceiver", "VideoSender"]
