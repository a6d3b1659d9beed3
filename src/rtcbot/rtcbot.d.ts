// TypeScript declarations for rtcbot.js, the browser half of rtcbot.
// Classic script: the global `rtcbot` (declare it with `/// <reference path="rtcbot.d.ts" />`).
// ES module: `import rtcbot, { RTCConnection } from "/rtcbot.mjs"`.

declare namespace rtcbot {
  /**
   * A JSON value or binary data: what put_nowait accepts. Received values are JSON values,
   * strings (text that was not JSON) or ArrayBuffers.
   */
  type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };
  type Message = JSONValue | ArrayBuffer | ArrayBufferView | Blob | object;
  type Received = JSONValue | ArrayBuffer;

  /** Anything with put_nowait: a Queue, a connection, a DataChannel. */
  interface Consumer<T = any> {
    put_nowait(value: T): void;
  }
  /** A function or an object with put_nowait. */
  type Subscriber<T> = ((value: T) => unknown) | Consumer<T>;

  /** The root of the errors rtcbot raises. */
  class RTCBotError extends Error {
    constructor(message: string, options?: { cause?: unknown });
  }
  /** The normal end of a stream: the object or queue was closed. */
  class SubscriptionClosed extends RTCBotError {}
  /** A bounded queue is full: the value was not accepted. */
  class SubscriptionFull extends RTCBotError {}
  /** A resume offer refused for good: the session cannot resume. */
  class SessionGone extends RTCBotError {}

  /** A minimal asyncio.Queue look-alike. */
  class Queue<T = any> implements Consumer<T> {
    /** @param maxsize the most items kept (default 10000, as in Python); 0 means no bound. */
    constructor(maxsize?: number);
    readonly maxsize: number;
    readonly closed: boolean;
    /** @throws SubscriptionFull when full; SubscriptionClosed when closed. */
    put_nowait(item: T): void;
    /** The next item; rejects with RTCBotError after `timeout` ms, SubscriptionClosed once closed and empty. */
    get(timeout?: number): Promise<T>;
    /** @throws RTCBotError when empty. */
    get_nowait(): T;
    qsize(): number;
    empty(): boolean;
    close(): void;
  }

  /** Ready/error/close events shared by every rtcbot object. */
  class EventHandler {
    readonly ready: boolean;
    readonly closed: boolean;
    readonly error: Error | null;
    /** Register a callback (called at once if already ready) and return it. */
    onReady<C extends Subscriber<true> | (() => unknown)>(callback: C): C;
    /** Resolves true once ready; rejects with the error (or SubscriptionClosed) if it closes first. */
    onReady(): Promise<true>;
    onError<C extends Subscriber<Error>>(callback: C): C;
    /** Resolves with the error, or null when it closes without one. */
    onError(): Promise<Error | null>;
    onClose<C extends Subscriber<null> | (() => unknown)>(callback: C): C;
    /** Resolves once closed. */
    onClose(): Promise<void>;
    /** Idempotent; never throws; the returned promise is already resolved. */
    close(): Promise<void>;
  }

  interface MessageStatistics {
    sent: number;
    received: number;
    notJson: number;
    queued: number;
    peakQueued: number;
    discarded: number;
    failed: number;
    pending: number;
    dropped: number;
  }

  /** One data channel (the default one, or a named one). */
  class DataChannel extends EventHandler implements Consumer<Message> {
    readonly name: string;
    readonly channel: RTCDataChannel | null;
    /** Bound to the object. @throws TypeError (cannot encode), SubscriptionFull, SubscriptionClosed. */
    put_nowait(value: Message): void;
    send(value: Message): void;
    subscribe(): Queue<Received>;
    subscribe<S extends Subscriber<Received>>(subscriber: S): S;
    unsubscribe(subscriber: Subscriber<Received>): boolean;
    get(timeout?: number): Promise<Received>;
    putSubscription<S extends { subscribe(s: Subscriber<any>): unknown } | { get(): Promise<any> }>(source: S): S;
    statistics(): MessageStatistics;
  }

  /** conn.video / conn.audio */
  class StreamHandler {
    readonly kind: "video" | "audio";
    /** Received streams so far, one per track. */
    readonly streams: MediaStream[];
    readonly senders: RTCRtpSender[];
    /** Names of the tracks received so far (the robot's addTrack(name=...): the stream id). */
    readonly names: string[];
    /** The stream of the track named `name`, or null if it has not arrived. */
    stream(name: string): MediaStream | null;
    /** callback(stream, track, name) once per incoming track of this kind (tracks so far at once). */
    subscribe<C extends (stream: MediaStream, track: MediaStreamTrack, name: string | null) => unknown>(callback: C): C;
    subscribe(): Queue<MediaStream>;
    subscribe<S extends Consumer<MediaStream>>(sink: S): S;
    /** Only the track named `name` (when it arrives, or at once if it has). */
    subscribe<C extends (stream: MediaStream, track: MediaStreamTrack, name: string | null) => unknown>(name: string, callback: C): C;
    subscribe(name: string): Queue<MediaStream>;
    subscribe<S extends Consumer<MediaStream>>(name: string, sink: S): S;
    unsubscribe(callback: unknown): boolean;
    /** Send a track (or a stream's tracks of this kind); before getLocalDescription(). */
    putSubscription<T extends MediaStreamTrack | MediaStream>(track: T, stream?: MediaStream): T;
    addTrack<T extends MediaStreamTrack | MediaStream>(track: T, stream?: MediaStream): T;
    /** Receive slots to ask for when this side offers (default 1). */
    offerToReceive(num?: number): void;
  }

  interface RTCConnectionOptions {
    /** Speak the heartbeat (default true). */
    heartbeat?: boolean;
    /** ms between pings (default 500). */
    heartbeatInterval?: number;
    /** ms of silence after which a peer that sent heartbeats counts as vanished (default 2500). */
    heartbeatTimeout?: number;
    /** ms to wait for ICE gathering in getLocalDescription (default 5000). */
    iceGatheringTimeout?: number;
    /** Messages that may wait to be sent (default 10000). */
    maxQueued?: number;
    /** Received messages kept for a first subscriber (default 1000). */
    maxPending?: number;
    /** jitterBufferTarget = 0 on received tracks (default true). */
    lowLatency?: boolean;
    /** close() on pagehide (default true). */
    closeOnPageHide?: boolean;
    /** ms a lost link may take to come back (default 30000; null: forever; 0: no resume). */
    resumeWindow?: number | null;
  }

  interface LinkStatistics {
    state: "new" | "up" | "lost" | "closed";
    losses: number;
    restores: number;
    attempts: number;
    /** ms, of the latest gap that ended (null before the first). */
    lastGap: number | null;
    /** ms the current gap has lasted (null while up). */
    gap: number | null;
  }

  interface SessionDescription {
    type: "offer" | "answer";
    sdp: string;
  }

  interface RTPStats {
    id: string;
    mid: string | null;
    /** kbit/s since the previous stats() call (null on the first). */
    bitrate: number | null;
    [key: string]: unknown;
  }

  interface RTCConnectionStats {
    connectionState: RTCPeerConnectionState;
    iceConnectionState: RTCIceConnectionState;
    /** Heartbeat round-trip time in ms (null until measured). */
    rtt: number | null;
    heartbeat: {
      rtt: number | null;
      rttMin: number | null;
      rttAvg: number | null;
      pingsSent: number;
      pongsReceived: number;
      peerSpeaksHeartbeat: boolean;
      silence: number | null;
    };
    candidatePair: {
      rtt: number | null;
      availableOutgoingBitrate: number | null;
      bytesSent: number;
      bytesReceived: number;
      local: { type: string; protocol: string; address: string; port: number } | null;
      remote: { type: string; protocol: string; address: string; port: number } | null;
    } | null;
    messages: MessageStatistics;
    channels: { [name: string]: MessageStatistics };
    video: { inbound: RTPStats[]; outbound: RTPStats[] };
    audio: { inbound: RTPStats[]; outbound: RTPStats[] };
  }

  /** A WebRTC connection to a Python rtcbot RTCConnection (or another browser). */
  class RTCConnection extends EventHandler implements Consumer<Message> {
    constructor(
      defaultOrdered?: boolean,
      rtcConfiguration?: RTCConfiguration,
      options?: RTCConnectionOptions,
    );
    readonly peerConnection: RTCPeerConnection;
    readonly video: StreamHandler;
    readonly audio: StreamHandler;
    /** Offer (no argument) or answer (given an offer); waits for ICE gathering. */
    getLocalDescription(description?: SessionDescription | null): Promise<SessionDescription>;
    setRemoteDescription(description: SessionDescription): Promise<void>;
    /** Bound to the connection. @throws TypeError (cannot encode), SubscriptionFull, SubscriptionClosed. */
    put_nowait(value: Message): void;
    send(value: Message): void;
    subscribe(): Queue<Received>;
    subscribe<S extends Subscriber<Received>>(subscriber: S): S;
    unsubscribe(subscriber: Subscriber<Received>): boolean;
    get(timeout?: number): Promise<Received>;
    putSubscription<S extends { subscribe(s: Subscriber<any>): unknown } | { get(): Promise<any> }>(source: S): S;
    statistics(): MessageStatistics;
    addDataChannel(name: string, ordered?: boolean): DataChannel;
    getDataChannel(name: string): DataChannel;
    onDataChannel(): Queue<DataChannel>;
    onDataChannel<S extends Subscriber<DataChannel>>(callback: S): S;
    stats(): Promise<RTCConnectionStats>;
    /** POST /connect (offer in, answer out) and resume through it when the link is lost. */
    connect(url?: string, options?: { token?: string; headers?: Record<string, string> }): Promise<RTCConnection>;
    /** How this offering side brings a lost link back: our new offer in, the peer's answer out. */
    setResumeSignaling(sendOffer: ((offer: SessionDescription) => Promise<SessionDescription>) | null): void;
    readonly linkUp: boolean;
    linkStatistics(): LinkStatistics;
    onLinkLost(): Promise<RTCBotError | null>;
    onLinkLost<S extends Subscriber<RTCBotError>>(callback: S): S;
    onLinkRestored(): Promise<null>;
    onLinkRestored<S extends Subscriber<null> | (() => unknown)>(callback: S): S;
  }

  interface KeyEvent {
    type: "keydown" | "keyup";
    altKey: boolean;
    shiftKey: boolean;
    ctrlKey: boolean;
    metaKey: boolean;
    key: string;
    code: string;
    keyCode: number;
    /** ms since 1970, from the event's own time. */
    timestamp: number;
  }

  /** Keyboard events of the page; prevents the default action only of `capture` keys. */
  class Keyboard extends EventHandler {
    constructor(options?: { capture?: string[]; target?: EventTarget });
    /** Keys held now (by code). */
    readonly pressed: string[];
    subscribe(): Queue<KeyEvent>;
    subscribe<S extends Subscriber<KeyEvent>>(subscriber: S): S;
    unsubscribe(subscriber: Subscriber<KeyEvent>): boolean;
  }

  interface GamepadState {
    type: "state";
    index: number;
    id: string | null;
    mapping: string;
    buttons: boolean[];
    buttonValues: number[];
    axes: number[];
    timestamp: number;
  }
  type GamepadEvent =
    | { type: `btn${number}`; value: boolean }
    | { type: `axis${number}`; value: number }
    | GamepadState;

  /** One gamepad by its browser index, polled. */
  class Gamepad extends EventHandler {
    constructor(index?: number, options?: { state?: boolean });
    readonly index: number;
    /** The latest snapshot (a copy), or null while not connected. */
    readonly state: GamepadState | null;
    readonly connected: boolean;
    subscribe(): Queue<GamepadEvent>;
    subscribe<S extends Subscriber<GamepadEvent>>(subscriber: S): S;
    unsubscribe(subscriber: Subscriber<GamepadEvent>): boolean;
  }

  /** Polls per second for all gamepads (default 30). */
  function setGamepadRate(rateHz: number): void;

  /** The robot's safety state, as its SafetyGate (Python, rtcbot.safety) reports it. */
  interface SafetyState {
    estop: boolean;
    estop_reason: string | null;
    /** The operator id of the driver, or null. */
    driver: number | string | null;
    request: { from: unknown; expires_in_ms: number | null } | null;
    /** "slow": speeds scaled by `scale`; "stopped": the link is too slow to drive. */
    mode: "normal" | "slow" | "stopped";
    scale: number | null;
    latency_ms: number | null;
    /** Which measurement caused the slow-down: "glass-to-glass", "rtt", "command age"... */
    latency_cause: string | null;
    /** Clamped values so far, by axis. */
    limits_hit: Record<string, number>;
    /** Refused commands so far, by kind ("malformed", "not driver", "too old", "estop"). */
    refused: Record<string, number>;
    last_refusal: string | null;
    /** The setpoint the motors have now. */
    output: Record<string, number>;
  }
  type SafetyUpdate =
    | { type: "state"; role: "driver" | "viewer"; you: number | string | null; state: SafetyState }
    | { type: "event"; event: { event: string; [key: string]: unknown } }
    | { type: "refused"; action: string | null; reason: string };

  /** The operator's side of a robot's safety gate (rtcbot.safety.SafetyGate). */
  class Safety extends EventHandler {
    constructor(
      conn: { put_nowait(value: Message): void; subscribe(s: Subscriber<Received>): unknown },
      options?: {
        keyboard?: Keyboard;
        /** Key codes or keys that latch the E-stop (default ["Space"]). */
        estopKeys?: string[];
        gamepad?: Gamepad;
        /** The gamepad button that latches the E-stop (default 1). */
        estopButton?: number;
        /** The operator's intent, read at each tick (else the last setIntent value). */
        intent?: () => Record<string, number> | null;
        /** Intent messages per second while driving (default 10). */
        rateHz?: number;
        /** The robot's clock in ms as the page estimates it; sent with each intent as `sent`. */
        clock?: () => number;
      },
    );
    readonly state: SafetyState | null;
    readonly role: "driver" | "viewer" | null;
    readonly you: number | string | null;
    readonly driving: boolean;
    /** Intent messages sent. */
    readonly sent: number;
    subscribe(): Queue<SafetyUpdate>;
    subscribe<S extends Subscriber<SafetyUpdate>>(subscriber: S): S;
    unsubscribe(subscriber: Subscriber<SafetyUpdate>): boolean;
    estop(reason?: string): void;
    release(): void;
    requestControl(): void;
    accept(): void;
    deny(): void;
    takeOver(token: string): void;
    reportLatency(latency: { glass_ms?: number | null; rtt_ms?: number | null }): void;
    setIntent(intent: Record<string, number> | null): void;
    /** Send the intent at once if it changed. */
    update(): void;
  }

  /** A WebSocket carrying values by the message rule. */
  class Websocket extends EventHandler implements Consumer<Message> {
    constructor(url: string, options?: { maxQueued?: number; maxPending?: number; protocols?: string | string[] });
    readonly url: string;
    readonly ws: WebSocket;
    put_nowait(value: Message): void;
    send(value: Message): void;
    subscribe(): Queue<Received>;
    subscribe<S extends Subscriber<Received>>(subscriber: S): S;
    unsubscribe(subscriber: Subscriber<Received>): boolean;
    get(timeout?: number): Promise<Received>;
    putSubscription<S extends { subscribe(s: Subscriber<any>): unknown } | { get(): Promise<any> }>(source: S): S;
    statistics(): MessageStatistics;
  }

  /** The payload that sends `value`: binary as is, anything else its JSON text. @throws TypeError */
  function encodeMessage(value: Message): string | ArrayBuffer | ArrayBufferView | Blob;

  /** `{iceServers: []}`: no server is contacted. */
  const DEFAULT_RTC_CONFIGURATION: Readonly<RTCConfiguration>;
  const VERSION: string;
}

declare module "rtcbot" {
  export = rtcbot;
}

declare module "*/rtcbot.mjs" {
  export default rtcbot;
  export const RTCConnection: typeof rtcbot.RTCConnection;
  export const DataChannel: typeof rtcbot.DataChannel;
  export const Keyboard: typeof rtcbot.Keyboard;
  export const Gamepad: typeof rtcbot.Gamepad;
  export const setGamepadRate: typeof rtcbot.setGamepadRate;
  export const Safety: typeof rtcbot.Safety;
  export const Websocket: typeof rtcbot.Websocket;
  export const Queue: typeof rtcbot.Queue;
  export const RTCBotError: typeof rtcbot.RTCBotError;
  export const SubscriptionClosed: typeof rtcbot.SubscriptionClosed;
  export const SubscriptionFull: typeof rtcbot.SubscriptionFull;
  export const SessionGone: typeof rtcbot.SessionGone;
  export const encodeMessage: typeof rtcbot.encodeMessage;
  export const DEFAULT_RTC_CONFIGURATION: typeof rtcbot.DEFAULT_RTC_CONFIGURATION;
  export const VERSION: typeof rtcbot.VERSION;
}
