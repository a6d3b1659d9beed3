/*!
 * rtcbot.js -- the browser half of rtcbot: talk to a robot running rtcbot over WebRTC.
 * MIT licence. Hand-written, no build step; this file is the only source.
 *
 * Load it either way:
 *   <script src="/rtcbot.js"></script>                   global `rtcbot`
 *   import { RTCConnection } from "/rtcbot.mjs";         ES module (Python:
 *                                                          rtcbot.javascript.getRTCBotJSModule())
 * The ES module is generated from this file by Python: the factory function between the
 * "@@factory" markers becomes the module body and the names between the "@@exports" markers
 * become its named exports. Keep both marker pairs.
 *
 * The message rule (the same as the Python side): put_nowait(value) JSON-encodes every value,
 * strings included, and sends it as a text message; ArrayBuffer, typed arrays, DataView and Blob
 * are sent as binary messages unchanged. Received text is JSON-decoded (text that is not JSON is
 * delivered as the raw string, counted and warned about once); received binary is delivered as
 * an ArrayBuffer. So the string "123" sent by Python arrives as the string "123", and
 * {"a": [1, 2.5]} arrives as the object {a: [1, 2.5]}.
 */
(function (root, factory) {
  "use strict";
  var lib = factory();
  if (typeof module === "object" && module !== null && typeof module.exports === "object") {
    module.exports = lib; // CommonJS (bundlers, Node)
  } else {
    root.rtcbot = lib; // classic <script>
  }
})(typeof globalThis !== "undefined" ? globalThis : this,
// @@factory-begin
function () {
  "use strict";

  /** The version of this library (the rtcbot Python package version it ships with). */
  const VERSION = "0.3.0.dev0";

  const DEFAULT_LABEL = "default";
  const HEARTBEAT_LABEL = "rtcbot-heartbeat";
  const HEARTBEAT_ID = 1000;
  // Send from our queue only while the browser's own buffer holds less than this many bytes.
  const HIGH_WATER = 1024 * 1024;
  const LOW_WATER = 256 * 1024;

  /**
   * The RTCConfiguration used when none is given: no ICE server, like the Python side, so
   * nothing contacts a third-party server. That connects a browser and a robot on the same
   * network. Across NATs (a robot on 4G, a browser elsewhere) give both sides STUN/TURN
   * servers, e.g. `new rtcbot.RTCConnection(true, {iceServers: [{urls: "stun:stun.l.google.com:19302"}]})`.
   * (RTCBot 0.2.5 used Google's public STUN server by default.)
   * @type {RTCConfiguration}
   */
  const DEFAULT_RTC_CONFIGURATION = Object.freeze({ iceServers: Object.freeze([]) });

  // ------------------------------------------------------------------------------- errors

  /** The root of the errors rtcbot raises. */
  class RTCBotError extends Error {
    /**
     * @param {string} message
     * @param {{cause?: unknown}} [options]
     */
    constructor(message, options) {
      super(message, options);
      this.name = "RTCBotError";
    }
  }

  /** The normal end of a stream: the object (or queue) was closed. */
  class SubscriptionClosed extends RTCBotError {
    /**
     * @param {string} message
     * @param {{cause?: unknown}} [options]
     */
    constructor(message, options) {
      super(message, options);
      this.name = "SubscriptionClosed";
    }
  }

  /** A bounded queue is full: the value was not accepted. */
  /**
   * A resume offer was refused for good (the robot no longer knows the session: HTTP 401, 403,
   * 404 or 410): the session cannot resume and the connection closes with this error. A resume
   * signalling function throws it to stop the attempts.
   */
  class SessionGone extends RTCBotError {
    constructor(message, options) {
      super(message, options);
      this.name = "SessionGone";
    }
  }

  class SubscriptionFull extends RTCBotError {
    /**
     * @param {string} message
     * @param {{cause?: unknown}} [options]
     */
    constructor(message, options) {
      super(message, options);
      this.name = "SubscriptionFull";
    }
  }

  // ------------------------------------------------------------------------------- helpers

  /** A short, readable rendering of a value for error messages. */
  function describe(value) {
    let text;
    if (value === undefined) text = "undefined";
    else if (typeof value === "function") text = "function " + (value.name || "(anonymous)");
    else if (typeof value === "bigint") text = String(value) + "n";
    else if (typeof value === "symbol") text = String(value);
    else if (typeof value === "number") text = String(value);
    else if (value instanceof ArrayBuffer) text = "ArrayBuffer(" + value.byteLength + ")";
    else if (ArrayBuffer.isView(value)) {
      text = value.constructor.name + "(" + value.byteLength + " bytes)";
    } else {
      try {
        text = JSON.stringify(value);
      } catch (e) {
        text = undefined;
      }
      if (text === undefined) text = Object.prototype.toString.call(value);
    }
    return text.length > 80 ? text.slice(0, 77) + "..." : text;
  }

  function isBinary(value) {
    return (
      value instanceof ArrayBuffer ||
      ArrayBuffer.isView(value) ||
      (typeof Blob !== "undefined" && value instanceof Blob)
    );
  }

  function binarySize(value) {
    return typeof Blob !== "undefined" && value instanceof Blob ? value.size : value.byteLength;
  }

  function rejectNonFinite(key, v) {
    if (typeof v === "number" && !Number.isFinite(v)) {
      throw new RangeError(String(v) + " (JSON cannot carry NaN or infinities; send null)");
    }
    return v;
  }

  /**
   * The payload that sends `value` under the message rule: the value itself for binary
   * (ArrayBuffer, typed array, DataView, Blob), otherwise its JSON text.
   * @throws {TypeError} naming the value when JSON cannot encode it (a function, undefined,
   *   a BigInt, a cycle, NaN or an infinity). Nothing is sent.
   */
  function encodeMessage(value) {
    if (isBinary(value)) return value;
    let text;
    try {
      text = JSON.stringify(value, rejectNonFinite);
    } catch (e) {
      throw new TypeError(
        "cannot send " + describe(value) + ": " + e.message +
          ". A message is a JSON value (object, array, string, number, boolean, null) or binary" +
          " (ArrayBuffer, typed array, Blob)",
        { cause: e },
      );
    }
    if (text === undefined) {
      throw new TypeError(
        "cannot send " + describe(value) + ": JSON cannot encode it. A message is a JSON value" +
          " (object, array, string, number, boolean, null) or binary (ArrayBuffer, typed array," +
          " Blob)",
      );
    }
    return text;
  }

  function utf8Length(text) {
    if (text.length * 3 < 65536) return text.length * 3; // an upper bound is enough here
    return new TextEncoder().encode(text).length;
  }

  function callSafely(fn, args, what) {
    try {
      const result = fn.apply(undefined, args);
      if (result && typeof result.then === "function") {
        result.then(undefined, (e) => console.error("rtcbot: " + what + " failed:", e));
      }
    } catch (e) {
      console.error("rtcbot: " + what + " failed:", e);
    }
  }

  function checkSubscriber(sub, where) {
    if (typeof sub === "function") return;
    if (sub !== null && typeof sub === "object" && typeof sub.put_nowait === "function") return;
    throw new TypeError(
      where + ": expected a function or an object with put_nowait(), got " + describe(sub),
    );
  }

  function deliver(sub, value, what) {
    if (typeof sub === "function") callSafely(sub, [value], what);
    else callSafely((v) => sub.put_nowait(v), [value], what);
  }

  function checkCount(name, value, min) {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
      throw new RangeError(name + " must be an integer >= " + min + ", got " + describe(value));
    }
    return value;
  }

  function checkPositive(name, value) {
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw new RangeError(name + " must be a positive, finite number, got " + describe(value));
    }
    return value;
  }

  function epochMs(highResTime) {
    // performance.now()-based times (event.timeStamp, gamepad.timestamp) to ms since 1970.
    return performance.timeOrigin + highResTime;
  }

  // ------------------------------------------------------------------------------- Queue

  /**
   * A minimal asyncio.Queue look-alike: `put_nowait(x)` and `await get()`. Any rtcbot
   * producer can feed one: `const q = conn.subscribe(new rtcbot.Queue())` (or simply
   * `conn.subscribe()`, which returns a new Queue).
   */
  class Queue {
    /**
     * @param {number} [maxsize=10000] the most items kept (as in Python); then put_nowait
     *   throws SubscriptionFull. 0 means no bound.
     */
    constructor(maxsize = 10000) {
      this.maxsize = checkCount("maxsize", maxsize, 0);
      this._items = [];
      this._waiters = [];
      this._closed = false;
    }

    /**
     * Add an item; never blocks.
     * @throws {SubscriptionFull} when maxsize items are already queued.
     * @throws {SubscriptionClosed} when the queue is closed.
     */
    put_nowait(item) {
      if (this._closed) throw new SubscriptionClosed("put_nowait() on a closed Queue");
      const waiter = this._waiters.shift();
      if (waiter) {
        clearTimeout(waiter.timer);
        waiter.resolve(item);
        return;
      }
      if (this.maxsize > 0 && this._items.length >= this.maxsize) {
        throw new SubscriptionFull(
          "Queue is full (maxsize " + this.maxsize + "); did not add " + describe(item),
        );
      }
      this._items.push(item);
    }

    /**
     * The next item, waiting for one if the queue is empty.
     * @param {number} [timeout] milliseconds to wait at most; then the promise rejects with an
     *   RTCBotError and no item is lost.
     * @returns {Promise<any>} rejects with SubscriptionClosed once the queue is closed and empty.
     */
    get(timeout) {
      if (this._items.length > 0) return Promise.resolve(this._items.shift());
      if (this._closed) return Promise.reject(new SubscriptionClosed("the Queue is closed"));
      return new Promise((resolve, reject) => {
        const waiter = { resolve, reject, timer: undefined };
        if (timeout !== undefined) {
          checkPositive("timeout", timeout);
          waiter.timer = setTimeout(() => {
            const i = this._waiters.indexOf(waiter);
            if (i >= 0) this._waiters.splice(i, 1);
            reject(new RTCBotError("Queue.get() timed out after " + timeout + " ms"));
          }, timeout);
        }
        this._waiters.push(waiter);
      });
    }

    /**
     * The next item, without waiting.
     * @throws {RTCBotError} when empty ({@link SubscriptionClosed} when also closed).
     */
    get_nowait() {
      if (this._items.length > 0) return this._items.shift();
      if (this._closed) throw new SubscriptionClosed("the Queue is closed");
      throw new RTCBotError("the Queue is empty");
    }

    /** The number of items waiting. */
    qsize() {
      return this._items.length;
    }

    /** True when no item is waiting. */
    empty() {
      return this._items.length === 0;
    }

    /** True once closed. */
    get closed() {
      return this._closed;
    }

    /** Close: pending and later `get()` calls reject with SubscriptionClosed once drained. */
    close() {
      if (this._closed) return;
      this._closed = true;
      const waiters = this._waiters.splice(0);
      for (const w of waiters) {
        clearTimeout(w.timer);
        w.reject(new SubscriptionClosed("the Queue is closed"));
      }
    }
  }

  // ------------------------------------------------------------------------------- fan-out

  // Delivers each value to every subscriber. `keep` > 0: values emitted while nobody is
  // subscribed are kept (the newest `keep`) and handed to the first subscriber. `replay`: every
  // value ever emitted is handed to each new subscriber (used for media streams).
  class Fanout {
    constructor(what, options) {
      this._what = what;
      this._subs = [];
      this._keep = (options && options.keep) || 0;
      this._replay = Boolean(options && options.replay);
      this._pending = [];
      this._history = [];
      this._closed = false;
      this.dropped = 0;
      this.delivered = 0;
      this._warned = false;
    }

    subscribe(sub) {
      if (sub === undefined || sub === null) sub = new Queue();
      checkSubscriber(sub, this._what + ".subscribe()");
      if (!this._subs.includes(sub)) this._subs.push(sub);
      const backlog = this._replay ? this._history.slice() : this._pending.splice(0);
      for (const value of backlog) deliver(sub, value, this._what + " subscriber");
      if (this._closed && sub instanceof Queue) sub.close();
      return sub;
    }

    unsubscribe(sub) {
      const i = this._subs.indexOf(sub);
      if (i < 0) return false;
      this._subs.splice(i, 1);
      return true;
    }

    emit(value) {
      if (this._closed) return;
      if (this._replay) this._history.push(value);
      if (this._subs.length === 0) {
        if (this._keep > 0) {
          this._pending.push(value);
          if (this._pending.length > this._keep) {
            this._pending.shift();
            this.dropped += 1;
            if (!this._warned) {
              this._warned = true;
              console.warn(
                "rtcbot: " + this._what + ": nobody subscribed; keeping only the newest " +
                  this._keep + " values (older ones are dropped and counted)",
              );
            }
          }
        }
        return;
      }
      this.delivered += 1;
      for (const sub of this._subs.slice()) deliver(sub, value, this._what + " subscriber");
    }

    get pending() {
      return this._pending.length;
    }

    close() {
      if (this._closed) return;
      this._closed = true;
      for (const sub of this._subs) if (sub instanceof Queue) sub.close();
      this._pending.length = 0;
      this._history.length = 0;
    }
  }

  // ------------------------------------------------------------------------------- lifecycle

  const EVENT_NAMES = { ready: "onReady", error: "onError", close: "onClose" };

  /**
   * Ready/error/close events shared by every rtcbot object.
   *
   * `onReady(cb)`, `onError(cb)`, `onClose(cb)` register a callback (a function, or an object
   * with put_nowait) and return it; one registered after the event happened is called at once
   * (in a microtask). Called with no argument they return a Promise: `await x.onReady()`
   * resolves to true once ready and rejects with the error (or SubscriptionClosed) if the
   * object closes first; `await x.onError()` resolves to the error, or null if the object closes
   * without one; `await x.onClose()` resolves once closed.
   */
  class EventHandler {
    constructor() {
      this._isReady = false;
      this._isClosed = false;
      this._err = null;
      this._handlers = { ready: [], error: [], close: [] };
      this._waiters = { ready: [], error: [], close: [] };
    }

    /** True while ready (a connection: its default data channel is open). */
    get ready() {
      return this._isReady;
    }

    /** True once closed (by close(), an error, or the peer). */
    get closed() {
      return this._isClosed;
    }

    /** The error that broke the object, or null. */
    get error() {
      return this._err;
    }

    /**
     * Call `callback()` when ready; without an argument, a Promise of readiness.
     * @param {Function|{put_nowait: Function}} [callback]
     */
    onReady(callback) {
      return this._on("ready", callback);
    }

    /**
     * Call `callback(error)` when the object fails (it then closes); without an argument, a
     * Promise of the error (null when it closes without one).
     * @param {Function|{put_nowait: Function}} [callback]
     */
    onError(callback) {
      return this._on("error", callback);
    }

    /**
     * Call `callback()` when the object closes; without an argument, a Promise of the close.
     * @param {Function|{put_nowait: Function}} [callback]
     */
    onClose(callback) {
      return this._on("close", callback);
    }

    _on(kind, callback) {
      if (callback === undefined || callback === null) {
        return new Promise((resolve, reject) => {
          if (kind === "ready") {
            if (this._isReady) return resolve(true);
            if (this._isClosed) return reject(this._closedError());
          } else if (kind === "error") {
            if (this._err !== null || this._isClosed) return resolve(this._err);
          } else if (this._isClosed) {
            return resolve(undefined);
          }
          this._waiters[kind].push({ resolve, reject });
        });
      }
      checkSubscriber(callback, EVENT_NAMES[kind] + "()");
      this._handlers[kind].push(callback);
      const happened =
        (kind === "ready" && this._isReady) ||
        (kind === "close" && this._isClosed) ||
        (kind === "error" && this._err !== null);
      if (happened) queueMicrotask(() => this._call(kind, callback));
      return callback;
    }

    _call(kind, callback) {
      const what = this.constructor.name + "." + EVENT_NAMES[kind] + " callback";
      if (typeof callback === "function") {
        callSafely(callback, kind === "error" ? [this._err] : [], what);
      } else {
        const arg = kind === "ready" ? true : kind === "error" ? this._err : null;
        callSafely((v) => callback.put_nowait(v), [arg], what);
      }
    }

    _fire(kind) {
      for (const cb of this._handlers[kind].slice()) this._call(kind, cb);
    }

    _closedError() {
      return this._err || new SubscriptionClosed(this.constructor.name + " closed before it became ready");
    }

    _setReady() {
      if (this._isReady || this._isClosed) return;
      this._isReady = true;
      for (const w of this._waiters.ready.splice(0)) w.resolve(true);
      this._fire("ready");
    }

    // A fatal error: onError fires, then the object closes.
    _setError(err) {
      if (this._isClosed) return;
      if (this._err === null) {
        this._err = err;
        for (const w of this._waiters.error.splice(0)) w.resolve(err);
        this._fire("error");
      }
      this.close();
    }

    // Called by close() once the object's resources are released.
    _markClosed() {
      if (this._isClosed) return;
      this._isClosed = true;
      this._isReady = false;
      for (const w of this._waiters.ready.splice(0)) w.reject(this._closedError());
      for (const w of this._waiters.error.splice(0)) w.resolve(this._err);
      for (const w of this._waiters.close.splice(0)) w.resolve(undefined);
      this._fire("close");
    }

    /** Close the object (idempotent). @returns {Promise<void>} already resolved. */
    close() {
      this._markClosed();
      return Promise.resolve();
    }
  }

  // ------------------------------------------------------------------------------- messages

  // What DataChannel and Websocket share: the message rule, a bounded outgoing queue that is
  // flushed when the transport opens, and fan-out of received values.
  class MessageEndpoint extends EventHandler {
    constructor(what, options) {
      super();
      const opts = options || {};
      this._what = what;
      this._maxQueued = checkCount("maxQueued", opts.maxQueued === undefined ? 10000 : opts.maxQueued, 1);
      this._outbox = [];
      this._in = new Fanout(what, {
        keep: checkCount("maxPending", opts.maxPending === undefined ? 1000 : opts.maxPending, 0),
      });
      this._stats = { sent: 0, received: 0, notJson: 0, peakQueued: 0, discarded: 0, failed: 0 };
      this._defaultSub = null;
      /**
       * Send a value (see the message rule at the top of this file). Bound to the object, so
       * `keyboard.subscribe(conn.put_nowait)` works.
       */
      this.put_nowait = this.put_nowait.bind(this);
      /** An alias of put_nowait. */
      this.send = this.put_nowait;
    }

    /**
     * Send `value`: JSON text (strings included) or binary as is. Sent at once when the
     * transport is open; otherwise queued (in order) and sent when it opens.
     * @throws {TypeError} when the value cannot be encoded (nothing is sent; keeps working).
     * @throws {SubscriptionFull} when maxQueued messages are already waiting.
     * @throws {SubscriptionClosed} when closed.
     */
    put_nowait(value) {
      if (this._isClosed) {
        throw new SubscriptionClosed(this._what + " is closed; did not send " + describe(value));
      }
      const data = encodeMessage(value);
      this._checkSize(data, value);
      if (this._outbox.length === 0 && this._canSend()) {
        try {
          this._transmit(data);
        } catch (e) {
          throw new RTCBotError("cannot send " + describe(value) + ": " + e.message, { cause: e });
        }
        return;
      }
      if (this._outbox.length >= this._maxQueued) {
        throw new SubscriptionFull(
          this._what + ": " + this._outbox.length + " messages are already waiting to be sent" +
            " (maxQueued); did not queue " + describe(value),
        );
      }
      this._outbox.push(data);
      if (this._outbox.length > this._stats.peakQueued) this._stats.peakQueued = this._outbox.length;
    }

    /**
     * Register a receiver of incoming values: a function, an object with put_nowait (a Queue,
     * another connection), or nothing (a new Queue is created). Several subscribers each get
     * every value. Values that arrived before the first subscriber are handed to it.
     * @returns the subscriber (the new Queue when none was given).
     */
    subscribe(subscriber) {
      return this._in.subscribe(subscriber);
    }

    /** Remove a subscriber. @returns {boolean} whether it was subscribed. */
    unsubscribe(subscriber) {
      return this._in.unsubscribe(subscriber);
    }

    /**
     * The next incoming value (through a default Queue subscription created on first use).
     * @param {number} [timeout] milliseconds
     * @returns {Promise<any>}
     */
    get(timeout) {
      if (this._defaultSub === null) this._defaultSub = this._in.subscribe(new Queue());
      return this._defaultSub.get(timeout);
    }

    /**
     * Send everything a producer emits: `source.subscribe(this.put_nowait)` for an rtcbot
     * producer (Keyboard, Gamepad, a connection), or a loop over `await source.get()` for
     * anything with an async get() (a Queue) until it closes.
     * @returns the source.
     */
    putSubscription(source) {
      if (source && typeof source.subscribe === "function") {
        source.subscribe(this.put_nowait);
      } else if (source && typeof source.get === "function") {
        (async () => {
          while (!this._isClosed) {
            let value;
            try {
              value = await source.get();
            } catch (e) {
              if (!(e instanceof SubscriptionClosed)) {
                console.error("rtcbot: " + this._what + ".putSubscription source failed:", e);
              }
              return;
            }
            if (this._isClosed) return;
            try {
              this.put_nowait(value);
            } catch (e) {
              console.error("rtcbot: " + this._what + ".putSubscription:", e);
            }
          }
        })();
      } else {
        throw new TypeError(
          "putSubscription(): expected a producer (with subscribe()) or an object with get(), got " +
            describe(source),
        );
      }
      return source;
    }

    /**
     * Message counters: sent, received, notJson (received text that was not JSON), queued
     * (waiting to be sent), peakQueued, discarded (queued when closed), failed (queued messages
     * the transport refused), pending (received, waiting for a first subscriber) and dropped
     * (received while nobody subscribed, beyond maxPending).
     */
    statistics() {
      return Object.assign({}, this._stats, {
        queued: this._outbox.length,
        pending: this._in.pending,
        dropped: this._in.dropped,
      });
    }

    _checkSize(data, value) {
      const limit = this._maxMessageSize();
      if (!limit) return;
      const size = typeof data === "string" ? utf8Length(data) : binarySize(data);
      if (size > limit) {
        throw new RangeError(
          "cannot send " + describe(value) + ": " + size + " bytes is more than the " + limit +
            " bytes a message may have on this connection",
        );
      }
    }

    _maxMessageSize() {
      return 0;
    }

    _flush() {
      while (this._outbox.length > 0 && this._canSend() && !this._isClosed) {
        const data = this._outbox.shift();
        try {
          this._transmit(data);
        } catch (e) {
          this._stats.failed += 1;
          console.error("rtcbot: " + this._what + ": a queued message could not be sent:", e);
        }
      }
    }

    _receive(data) {
      this._stats.received += 1;
      let value = data;
      if (typeof data === "string") {
        try {
          value = JSON.parse(data);
        } catch (e) {
          this._stats.notJson += 1;
          if (this._stats.notJson === 1) {
            console.warn(
              "rtcbot: " + this._what + " received text that is not JSON (" + describe(data) +
                "); delivering it as a string. Later ones are only counted.",
            );
          }
        }
      } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
        value = data instanceof ArrayBuffer ? data : data.buffer;
      }
      this._in.emit(value);
    }

    _closeEndpoint() {
      this._stats.discarded += this._outbox.length;
      this._outbox.length = 0;
      this._in.close();
    }
  }

  /**
   * One data channel of an RTCConnection: the default one (through the connection's own
   * put_nowait/subscribe) or a named one (`conn.addDataChannel(name)`, `conn.onDataChannel`).
   * Carries values by the message rule; has put_nowait/send, subscribe/unsubscribe/get,
   * putSubscription, onReady/onClose/onError, statistics() and close().
   */
  class DataChannel extends MessageEndpoint {
    /** @internal made by RTCConnection (addDataChannel, onDataChannel), not by users. */
    constructor(name, connection, options) {
      super('data channel "' + name + '"', options);
      this._name = name;
      this._conn = connection;
      this._ordered = options && options.ordered !== undefined ? Boolean(options.ordered) : true;
      this._channel = null;
      this._listeners = [];
    }

    /** The channel's label. @type {string} */
    get name() {
      return this._name;
    }

    /** The underlying RTCDataChannel (null until it exists). */
    get channel() {
      return this._channel;
    }

    _attach(channel) {
      this._channel = channel;
      channel.binaryType = "arraybuffer";
      channel.bufferedAmountLowThreshold = LOW_WATER;
      const listen = (type, fn) => {
        channel.addEventListener(type, fn);
        this._listeners.push([type, fn]);
      };
      listen("open", () => this._onOpen());
      listen("message", (e) => {
        if (this._conn) this._conn._heard();
        this._receive(e.data);
      });
      listen("bufferedamountlow", () => this._flush());
      listen("close", () => {
        // a lost link: the connection keeps this object for the next transport's channel
        if (this._conn && this._conn._keepChannel(this)) return;
        this.close();
      });
      // An "error" event reports why the channel is closing (the peer closed or aborted the
      // association); the "close" event that follows closes this object.
      listen("error", (e) => {
        this._lastError = e.error || e;
      });
      if (channel.readyState === "open") this._onOpen();
      else if (channel.readyState === "closed") this.close();
    }

    _onOpen() {
      if (this._isClosed) return;
      this._setReady();
      this._flush();
      if (this._conn) this._conn._channelOpened(this);
    }

    // Let go of the RTCDataChannel of a lost transport; messages put meanwhile wait (bounded).
    _detach() {
      const ch = this._channel;
      if (ch === null) return;
      for (const [type, fn] of this._listeners) ch.removeEventListener(type, fn);
      this._listeners.length = 0;
      this._channel = null;
    }

    _canSend() {
      const ch = this._channel;
      return ch !== null && ch.readyState === "open" && ch.bufferedAmount <= HIGH_WATER;
    }

    _transmit(data) {
      this._channel.send(data);
      this._stats.sent += 1;
    }

    _maxMessageSize() {
      return this._conn ? this._conn._maxMessageSize() : 0;
    }

    /**
     * Close the channel (the peer sees it close) and end its subscriptions; never throws.
     * Messages still queued are discarded (counted in statistics().discarded).
     * @returns {Promise<void>} already resolved.
     */
    close() {
      if (this._isClosed) return Promise.resolve();
      const ch = this._channel;
      if (ch !== null) {
        for (const [type, fn] of this._listeners) ch.removeEventListener(type, fn);
        this._listeners.length = 0;
        try {
          if (ch.readyState !== "closed") ch.close();
        } catch (e) {
          // closing a channel whose peer connection is gone: nothing left to do
        }
      }
      this._closeEndpoint();
      this._markClosed();
      return Promise.resolve();
    }
  }

  // ------------------------------------------------------------------------------- media

  /**
   * `conn.video` / `conn.audio`: the media tracks of one kind.
   * Receiving: `subscribe(cb)` calls `cb(stream, track)` once per incoming track of this kind,
   * with a MediaStream for `element.srcObject` that holds that track (and the same stream's
   * tracks of the other kind, if any). Subscribers added later get the tracks already received.
   * Sending: `putSubscription(track)` adds a MediaStreamTrack (from getUserMedia or a canvas)
   * before negotiation, with a stream so the peer gets `streams[0]`.
   * Named tracks (a robot's `conn.video.addTrack(camera, name="front")`): the name is the id
   * of the stream the peer put the track in; `names` lists them, `stream(name)` gives one and
   * `subscribe(name, cb)` waits for one, whatever order the tracks come in.
   */
  class StreamHandler {
    /** @internal made by RTCConnection (conn.video, conn.audio). */
    constructor(connection, kind) {
      this._conn = connection;
      /** "video" or "audio". @type {string} */
      this.kind = kind;
      this._outgoing = [];
      this._receivers = [];
      this._offerToReceive = 0;
      this._fanout = new Fanout("conn." + kind, { replay: true });
    }

    /**
     * Receive incoming tracks of this kind: `callback(stream, track, name)` runs once per track
     * (for tracks received so far at once). Also makes an offerer ask for at least one track.
     * With a `name` first (`subscribe("front", cb)`), only the track of that name is given
     * (when it arrives, or at once if it already has).
     * @param {string|Function|{put_nowait: Function}} [name] a track name, or the callback.
     * @param {Function|{put_nowait: Function}} [callback] nothing: a new Queue of streams.
     * @returns the callback (or the Queue).
     */
    subscribe(name, callback) {
      let only = null;
      if (typeof name === "string") {
        only = name;
      } else {
        if (callback !== undefined) {
          throw new TypeError(
            "conn." + this.kind + ".subscribe(name, callback): name must be a string, got " +
              describe(name),
          );
        }
        callback = name;
      }
      if (this._offerToReceive < 1) this._offerToReceive = 1;
      const wanted = (item) => only === null || item.name === only;
      if (typeof callback === "function") {
        const fn = callback;
        const wrapped = (item) => {
          if (wanted(item)) fn(item.stream, item.track, item.name);
        };
        wrapped._rtcbotOriginal = fn;
        this._fanout.subscribe(wrapped);
        return callback;
      }
      const sink = callback === undefined || callback === null ? new Queue() : callback;
      checkSubscriber(sink, "conn." + this.kind + ".subscribe()");
      const wrapped = {
        put_nowait: (item) => {
          if (wanted(item)) sink.put_nowait(item.stream);
        },
        _rtcbotOriginal: sink,
      };
      this._fanout.subscribe(wrapped);
      if (sink instanceof Queue) this._queues = (this._queues || []).concat([sink]);
      return sink;
    }

    /**
     * The names of the tracks received so far, in arrival order: the name the robot gave each
     * track (`addTrack(..., name=...)`), which is the id of the stream it came in; a track sent
     * without a name shows the id of its stream (a random string).
     * @type {string[]}
     */
    get names() {
      return this._fanout._history.map((item) => item.name);
    }

    /**
     * The MediaStream of the track named `name`, or null if it has not arrived (see
     * `subscribe(name, callback)` to wait for it).
     * @param {string} name
     * @returns {MediaStream|null}
     */
    stream(name) {
      const item = this._fanout._history.find((i) => i.name === name);
      return item ? item.stream : null;
    }

    /** Remove a subscriber. @returns {boolean} */
    unsubscribe(callback) {
      const found = this._fanout._subs.find((s) => s._rtcbotOriginal === callback);
      return found ? this._fanout.unsubscribe(found) : false;
    }

    /**
     * Send a local track (or all tracks of this kind of a MediaStream) to the peer. Call before
     * getLocalDescription(): rtcbot does not renegotiate.
     * @param {MediaStreamTrack|MediaStream} track
     * @param {MediaStream} [stream] the stream the peer sees the track in (default: a new one
     *   per track, or the given MediaStream).
     * @returns the track (or stream).
     */
    putSubscription(track, stream) {
      if (this._conn._negotiated) {
        throw new RTCBotError(
          "conn." + this.kind + ".putSubscription(): add tracks before getLocalDescription();" +
            " rtcbot does not renegotiate a running connection",
        );
      }
      if (typeof MediaStream !== "undefined" && track instanceof MediaStream) {
        const tracks = track.getTracks().filter((t) => t.kind === this.kind);
        if (tracks.length === 0) {
          throw new TypeError("conn." + this.kind + ".putSubscription(): the stream has no " + this.kind + " track");
        }
        for (const t of tracks) this._outgoing.push({ track: t, stream: track, sender: null });
        return track;
      }
      if (!track || typeof track.kind !== "string" || typeof track.stop !== "function") {
        throw new TypeError(
          "conn." + this.kind + ".putSubscription(): expected a MediaStreamTrack or MediaStream, got " +
            describe(track),
        );
      }
      if (track.kind !== this.kind) {
        throw new TypeError(
          "conn." + this.kind + ".putSubscription(): got a " + track.kind + " track; use conn." +
            track.kind,
        );
      }
      if (stream === undefined) stream = new MediaStream([track]);
      this._outgoing.push({ track, stream, sender: null });
      return track;
    }

    /** An alias of putSubscription (Python's name). */
    addTrack(track, stream) {
      return this.putSubscription(track, stream);
    }

    /**
     * How many tracks of this kind to ask for when this side makes the offer (tracks it sends
     * count too, since they can receive).
     * @param {number} [num=1]
     */
    offerToReceive(num = 1) {
      this._offerToReceive = checkCount("num", num, 0);
    }

    /** The MediaStreams received so far (one per track). @type {MediaStream[]} */
    get streams() {
      return this._fanout._history.map((item) => item.stream);
    }

    /** The RTCRtpSenders of the tracks sent (filled once negotiated). */
    get senders() {
      return this._outgoing.map((o) => o.sender).filter((s) => s !== null);
    }

    _addTracks(pc) {
      for (const out of this._outgoing) {
        if (out.sender === null) out.sender = pc.addTrack(out.track, out.stream);
      }
    }

    // A resumed session: the outgoing tracks go to the next peer connection, and the tracks it
    // receives replace the old ones inside the same MediaStreams (a <video> keeps playing).
    _releaseTransport() {
      for (const out of this._outgoing) out.sender = null;
      this._receivers = [];
      this._awaiting = this._fanout._history.slice();
    }

    _rebind(event) {
      const items = this._awaiting || [];
      const item = items.shift();
      if (item === undefined) return false;
      const old = item.track;
      item.track = event.track;
      try {
        item.stream.removeTrack(old);
        item.stream.addTrack(event.track);
      } catch (e) {
        console.error("rtcbot: could not move the resumed track into its stream:", e);
      }
      return true;
    }

    _addReceiveSlots(pc) {
      const missing = this._offerToReceive - this._outgoing.length;
      for (let i = 0; i < missing; i++) pc.addTransceiver(this.kind, { direction: "recvonly" });
    }

    _onTrack(event, lowLatency) {
      const receiver = event.receiver;
      if (lowLatency && receiver) {
        try {
          if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = 0;
          else if ("playoutDelayHint" in receiver) receiver.playoutDelayHint = 0;
        } catch (e) {
          // older browsers: keep their default playout delay
        }
      }
      this._receivers.push(receiver);
      if (this._rebind(event)) return;
      const track = event.track;
      let stream = event.streams && event.streams[0];
      const name = stream ? stream.id : null;
      // Each call shows exactly one track of this kind: a stream holding several (two cameras
      // sent in one stream) would play only one of them.
      if (!stream || stream.getTracks().filter((t) => t.kind === this.kind).length !== 1) {
        stream = new MediaStream([track]);
      }
      this._fanout.emit({ stream, track, name });
    }

    /** End the subscriptions (called by the connection's close(); tracks are not stopped). */
    close() {
      this._fanout.close();
      for (const q of this._queues || []) q.close();
    }
  }

  // ------------------------------------------------------------------------------- connection

  /**
   * A WebRTC connection to a Python rtcbot RTCConnection (or to another browser).
   *
   * Signalling is yours: `const offer = await conn.getLocalDescription()`, send it to the robot
   * (usually POST /connect), `await conn.setRemoteDescription(answer)`. Or answer an offer:
   * `const answer = await conn.getLocalDescription(offer)`. ICE is not trickled: descriptions
   * carry every candidate.
   *
   * Messages go over the data channel labelled "default" (created by the offerer) with the
   * message rule; `conn.video` and `conn.audio` carry media; named channels come from
   * addDataChannel / onDataChannel. A heartbeat on a negotiated channel (id 1000) measures the
   * round-trip time and closes the connection (error set) when a peer that sent heartbeats
   * stays silent for 2.5 s. The connection closes itself when the page is hidden for good
   * (pagehide), so the robot notices at once.
   */
  class RTCConnection extends EventHandler {
    /**
     * @param {boolean} [defaultOrdered=true] whether the default channel keeps message order
     *   (false: unordered, lower latency after a loss).
     * @param {RTCConfiguration} [rtcConfiguration] ICE servers etc. Default:
     *   {@link DEFAULT_RTC_CONFIGURATION}, `{iceServers: []}`: no server is contacted (enough
     *   on one network); give STUN/TURN servers to cross NATs.
     * @param {RTCConnectionOptions} [options] heartbeat, heartbeatInterval (ms, 500),
     *   heartbeatTimeout (ms, 2500), iceGatheringTimeout (ms, 5000), maxQueued (10000),
     *   maxPending (1000), lowLatency (true: jitterBufferTarget 0 on received tracks),
     *   closeOnPageHide (true), resumeWindow (ms, 30000; null: forever; 0: a lost link closes
     *   the connection): how long a lost link may take to come back (see setResumeSignaling).
     */
    constructor(defaultOrdered = true, rtcConfiguration = undefined, options = undefined) {
      super();
      if (typeof defaultOrdered !== "boolean") {
        throw new TypeError("defaultOrdered must be true or false, got " + describe(defaultOrdered));
      }
      if (rtcConfiguration === undefined || rtcConfiguration === null) {
        rtcConfiguration = DEFAULT_RTC_CONFIGURATION;
      } else if (typeof rtcConfiguration !== "object" || Array.isArray(rtcConfiguration)) {
        throw new TypeError(
          "rtcConfiguration must be an RTCConfiguration object such as {iceServers: []}, got " +
            describe(rtcConfiguration),
        );
      }
      const opts = Object.assign(
        {
          heartbeat: true,
          heartbeatInterval: 500,
          heartbeatTimeout: 2500,
          iceGatheringTimeout: 5000,
          maxQueued: 10000,
          maxPending: 1000,
          lowLatency: true,
          closeOnPageHide: true,
          resumeWindow: 30000,
        },
        options || {},
      );
      for (const key of Object.keys(opts)) {
        if (!RTC_OPTIONS.includes(key)) {
          throw new TypeError("unknown RTCConnection option " + describe(key) + "; known: " + RTC_OPTIONS.join(", "));
        }
      }
      checkPositive("heartbeatInterval", opts.heartbeatInterval);
      checkPositive("heartbeatTimeout", opts.heartbeatTimeout);
      checkPositive("iceGatheringTimeout", opts.iceGatheringTimeout);
      if (opts.resumeWindow !== null && opts.resumeWindow !== 0) checkPositive("resumeWindow", opts.resumeWindow);
      if (typeof RTCPeerConnection === "undefined") {
        throw new RTCBotError("this environment has no RTCPeerConnection (WebRTC)");
      }
      this._opts = opts;
      this._defaultOrdered = defaultOrdered;
      this._negotiated = false;
      this._closing = false;
      this._rtcConfiguration = rtcConfiguration;
      this._rtc = new RTCPeerConnection(rtcConfiguration);
      this._role = null;
      this._link = { state: "new", lostAt: null, losses: 0, restores: 0, attempts: 0, lastGap: null };
      this._resumeSignal = null;
      this._resumeTimer = null;
      this._windowTimer = null;
      this._linkUpWaiter = null;
      this._peerSaidBye = false;
      this._linkHandlers = { lost: [], restored: [] };
      this._linkWaiters = { lost: [], restored: [] };

      this._default = new DataChannel(DEFAULT_LABEL, this, {
        ordered: defaultOrdered,
        maxQueued: opts.maxQueued,
        maxPending: opts.maxPending,
      });
      this._default.onReady(() => this._setReady());
      this._default.onClose(() => this._onDefaultClosed());
      this._default._local = true;
      this._channels = new Map();
      this._remoteChannels = new Fanout("conn.onDataChannel", { keep: 1000 });

      /** Video tracks: subscribe(cb) to receive, putSubscription(track) to send. */
      this.video = new StreamHandler(this, "video");
      /** Audio tracks: subscribe(cb) to receive, putSubscription(track) to send. */
      this.audio = new StreamHandler(this, "audio");

      this._hb = null;
      this._hbTimer = null;
      this._hbLastHeard = null;
      this._hbStats = { rtt: null, rttMin: null, rttAvg: null, pingsSent: 0, pongsReceived: 0 };
      this._prevBytes = new Map();

      this._pcListeners = [];
      this._listenPc();
      if (opts.heartbeat) this._setupHeartbeat();

      this._onPageHide = () => this.close();
      if (opts.closeOnPageHide && typeof window !== "undefined" && window.addEventListener) {
        window.addEventListener("pagehide", this._onPageHide);
      }

      /** Send a value on the default channel (bound: `kb.subscribe(conn.put_nowait)` works). */
      this.put_nowait = this.put_nowait.bind(this);
      /** An alias of put_nowait. */
      this.send = this.put_nowait;
    }

    /** The underlying RTCPeerConnection (for what rtcbot does not wrap; a resumed session has
     * a new one). */
    get peerConnection() {
      return this._rtc;
    }

    _listenPc() {
      const pc = this._rtc;
      const listen = (type, fn) => {
        pc.addEventListener(type, fn);
        this._pcListeners.push([type, fn]);
      };
      listen("datachannel", (e) => this._onRemoteChannel(e.channel));
      listen("track", (e) => this._onTrack(e));
      listen("connectionstatechange", () => this._onConnectionState());
    }

    // ------------------------------------------------------------------ resumable sessions

    /**
     * How this (offering) side brings a lost link back: `await sendOffer(offer)` takes our new
     * offer to the robot through the same path as the first one and returns its answer. When
     * the link is lost (heartbeat quiet, ICE failed, the transport closed without a goodbye),
     * attempts start at once and are retried (200 ms doubling to 1 s; 3 s each) until
     * resumeWindow expires; the same RTCConnection carries on: channels, subscriptions, the
     * MediaStreams given to conn.video.subscribe (their tracks are replaced). Throw
     * {@link SessionGone} to stop. `connect(url)` sets this for you. null: no resume.
     * @param {Function|null} sendOffer
     */
    setResumeSignaling(sendOffer) {
      if (sendOffer !== null && typeof sendOffer !== "function") {
        throw new TypeError("setResumeSignaling(): expected an async function or null, got " + describe(sendOffer));
      }
      this._resumeSignal = sendOffer;
    }

    /**
     * Connect to a robot's POST /connect endpoint (rtcbot.web.add_rtcbot_routes, the demo):
     * post our offer, apply the answer, and resume through the same URL when the link is lost.
     * Resolves once the connection is ready.
     * @param {string} [url="/connect"]
     * @param {{token?: string, headers?: Object}} [options] a token is sent as
     *   `Authorization: Bearer`.
     * @returns {Promise<RTCConnection>} this connection.
     */
    async connect(url = "/connect", options = undefined) {
      const opts = options || {};
      const headers = Object.assign({ "Content-Type": "application/json" }, opts.headers || {});
      if (opts.token) headers.Authorization = "Bearer " + opts.token;
      let session = null;
      const post = async (body, resume) => {
        const extra = resume ? { "RTCBot-Resume": "1" } : {};
        let response;
        try {
          response = await fetch(url, {
            method: "POST",
            headers: Object.assign({}, headers, extra),
            body: JSON.stringify(body),
          });
        } catch (e) {
          throw new RTCBotError("POST " + url + " failed: " + e, { cause: e });
        }
        if (!response.ok) {
          const text = (await response.text()).slice(0, 300);
          const gone = resume && [401, 403, 404, 410].includes(response.status);
          const Err = gone ? SessionGone : RTCBotError;
          throw new Err("POST " + url + ": HTTP " + response.status + ": " + text);
        }
        return response.json();
      };
      this.setResumeSignaling(async (offer) => {
        if (session === null) throw new SessionGone("the robot gave no session to resume");
        const answer = await post({ type: offer.type, sdp: offer.sdp, session }, true);
        return { type: answer.type, sdp: answer.sdp };
      });
      const offer = await this.getLocalDescription();
      const answer = await post({ type: offer.type, sdp: offer.sdp, resume: true }, false);
      const s = answer && answer.session;
      if (s && typeof s.id === "string" && typeof s.secret === "string") {
        session = { id: s.id, secret: s.secret };
      } else {
        this.setResumeSignaling(null);
      }
      await this.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
      await this.onReady();
      return this;
    }

    /** True while the session has a working transport. @type {boolean} */
    get linkUp() {
      return this._link.state === "up" && !this._isClosed;
    }

    /** Counters of the link: state, losses, restores, attempts, lastGap (ms). */
    linkStatistics() {
      const l = this._link;
      return {
        state: this._isClosed ? "closed" : l.state,
        losses: l.losses,
        restores: l.restores,
        attempts: l.attempts,
        lastGap: l.lastGap,
        gap: l.state === "lost" ? performance.now() - l.lostAt : null,
      };
    }

    /**
     * Call `callback(error)` each time the link is lost (the session goes on and resumes);
     * without an argument, a Promise of the next loss (null if the connection closes first).
     */
    onLinkLost(callback) {
      return this._onLink("lost", callback);
    }

    /**
     * Call `callback()` each time a lost link is back; without an argument, a Promise of the
     * next restore (null if the connection closes first).
     */
    onLinkRestored(callback) {
      return this._onLink("restored", callback);
    }

    _onLink(kind, callback) {
      if (callback === undefined || callback === null) {
        if (this._isClosed) return Promise.resolve(null);
        return new Promise((resolve) => this._linkWaiters[kind].push(resolve));
      }
      checkSubscriber(callback, kind === "lost" ? "onLinkLost()" : "onLinkRestored()");
      this._linkHandlers[kind].push(callback);
      return callback;
    }

    _fireLink(kind, value) {
      for (const resolve of this._linkWaiters[kind].splice(0)) resolve(value === undefined ? null : value);
      const what = "RTCConnection." + (kind === "lost" ? "onLinkLost" : "onLinkRestored") + " callback";
      for (const cb of this._linkHandlers[kind].slice()) {
        if (kind === "lost") deliver(cb, value, what);
        else if (typeof cb === "function") callSafely(cb, [], what);
        else deliver(cb, null, what);
      }
    }

    _mayResume() {
      if (this._isClosed || this._closing || this._peerSaidBye) return false;
      if (this._opts.resumeWindow === 0 || this._resumeSignal === null || this._role !== "offerer") return false;
      return this._link.state === "up" || this._link.state === "lost";
    }

    _channelOpened(dc) {
      if (dc !== this._default || this._isClosed || this._closing) return;
      const link = this._link;
      if (link.state === "lost") {
        const gap = performance.now() - link.lostAt;
        link.lastGap = gap;
        link.restores += 1;
        link.state = "up";
        link.lostAt = null;
        if (this._windowTimer !== null) clearTimeout(this._windowTimer);
        this._windowTimer = null;
        const waiter = this._linkUpWaiter;
        this._linkUpWaiter = null;
        if (waiter) waiter.resolve();
        this._fireLink("restored");
      } else {
        link.state = "up";
      }
    }

    // A channel's RTCDataChannel closed: keep the channel if its transport went with it.
    _keepChannel(dc) {
      if (this._isClosed || this._closing) return false;
      if (this._link.state === "lost") return true;
      const sctp = this._rtc.sctp;
      if (sctp && sctp.state === "connected" && this._rtc.connectionState === "connected") return false;
      if (!this._mayResume()) return false;
      this._linkLost(new RTCBotError("the transport closed without the peer saying goodbye"));
      return true;
    }

    _linkLost(error) {
      if (this._isClosed || this._closing) return;
      if (!this._mayResume()) {
        this._setError(error);
        return;
      }
      const link = this._link;
      if (link.state !== "up") return;
      link.state = "lost";
      link.lostAt = performance.now();
      link.losses += 1;
      console.warn("rtcbot: link lost (" + error.message + "); resuming");
      this._dropTransport();
      const window_ = this._opts.resumeWindow;
      if (window_ !== null) {
        this._windowTimer = setTimeout(() => {
          this._windowTimer = null;
          if (this._link.state === "lost") {
            this._setError(new RTCBotError("the link was lost and did not come back within the resume window (" + window_ / 1000 + " s)"));
          }
        }, window_);
      }
      let resolveUp;
      const up = new Promise((resolve) => (resolveUp = resolve));
      this._linkUpWaiter = { promise: up, resolve: resolveUp };
      this._resumeLoop(200);
      this._fireLink("lost", error);
    }

    _dropTransport() {
      if (this._hbTimer !== null) clearInterval(this._hbTimer);
      this._hbTimer = null;
      this._hbLastHeard = null;
      const old = this._rtc;
      for (const [type, fn] of this._pcListeners) old.removeEventListener(type, fn);
      this._pcListeners = [];
      this._default._detach();
      for (const dc of this._channels.values()) dc._detach();
      this.video._releaseTransport();
      this.audio._releaseTransport();
      try {
        old.close();
      } catch (e) {
        // already closed
      }
      this._rtc = new RTCPeerConnection(this._rtcConfiguration);
      this._listenPc();
      if (this._opts.heartbeat) this._setupHeartbeat();
    }

    _resumeLoop(backoff) {
      if (this._link.state !== "lost" || this._isClosed || this._closing) return;
      this._link.attempts += 1;
      let timer;
      const timeout = new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new RTCBotError("the resume attempt took over 3 s")), 3000);
      });
      Promise.race([this._attemptResume(), timeout]).then(
        () => clearTimeout(timer),
        (e) => {
          clearTimeout(timer);
          if (this._link.state !== "lost" || this._isClosed || this._closing) return;
          if (e instanceof SessionGone) {
            this._setError(e);
            return;
          }
          console.info("rtcbot: resume attempt failed:", e && e.message);
          this._dropTransport(); // a fresh peer connection for the next attempt
          this._resumeTimer = setTimeout(() => {
            this._resumeTimer = null;
            this._resumeLoop(Math.min(backoff * 2, 1000));
          }, backoff);
        },
      );
    }

    async _attemptResume() {
      const pc = this._rtc;
      this._default._attach(pc.createDataChannel(DEFAULT_LABEL, { ordered: this._defaultOrdered }));
      for (const dc of this._channels.values()) {
        if (dc._local && dc.channel === null) dc._attach(pc.createDataChannel(dc.name, { ordered: dc._ordered }));
      }
      this.video._addTracks(pc);
      this.audio._addTracks(pc);
      this.video._addReceiveSlots(pc);
      this.audio._addReceiveSlots(pc);
      await pc.setLocalDescription(await pc.createOffer());
      await this._iceGathered();
      if (pc !== this._rtc) throw new RTCBotError("superseded");
      const answer = await this._resumeSignal({ type: pc.localDescription.type, sdp: pc.localDescription.sdp });
      if (pc !== this._rtc || this._isClosed) throw new RTCBotError("superseded");
      await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
      if (this._linkUpWaiter) await this._linkUpWaiter.promise;
    }

    // ------------------------------------------------------------------ signalling

    /**
     * This side's session description, once ICE gathering completed (or iceGatheringTimeout
     * passed: then with the candidates found so far).
     * - No argument and no remote offer: make an offer (creates the "default" channel, adds the
     *   tracks given to putSubscription and receive slots for offerToReceive).
     * - With a remote offer (or after setRemoteDescription(offer)): make the answer.
     * - Called again: the description already made.
     * @param {{type: string, sdp: string}|null} [description] the peer's offer.
     * @returns {Promise<{type: string, sdp: string}>} a plain object, ready for JSON.stringify.
     */
    async getLocalDescription(description = null) {
      this._checkOpen("getLocalDescription()");
      if (description !== null && description !== undefined) {
        await this.setRemoteDescription(description);
      }
      const pc = this._rtc;
      if (pc.signalingState === "have-remote-offer") {
        this._negotiated = true;
        this.video._addTracks(pc);
        this.audio._addTracks(pc);
        const answer = await pc.createAnswer();
        this._checkOpen("getLocalDescription()");
        await pc.setLocalDescription(answer);
      } else if (pc.signalingState === "stable" && !pc.localDescription) {
        this._negotiated = true;
        this._role = "offerer";
        if (this._default.channel === null) {
          this._default._attach(pc.createDataChannel(DEFAULT_LABEL, { ordered: this._defaultOrdered }));
        }
        this.video._addTracks(pc);
        this.audio._addTracks(pc);
        this.video._addReceiveSlots(pc);
        this.audio._addReceiveSlots(pc);
        const offer = await pc.createOffer();
        this._checkOpen("getLocalDescription()");
        await pc.setLocalDescription(offer);
      }
      await this._iceGathered();
      this._checkOpen("getLocalDescription()");
      const local = pc.localDescription;
      return { type: local.type, sdp: local.sdp };
    }

    /**
     * Apply the peer's description (its answer to our offer, or its offer).
     * @param {{type: string, sdp: string}} description
     * @throws {TypeError} when it is not a {type, sdp} object.
     */
    async setRemoteDescription(description) {
      this._checkOpen("setRemoteDescription()");
      if (
        !description ||
        typeof description !== "object" ||
        typeof description.sdp !== "string" ||
        !["offer", "answer"].includes(description.type)
      ) {
        throw new TypeError(
          'setRemoteDescription(): expected {type: "offer"|"answer", sdp: string}, got ' +
            describe(description),
        );
      }
      if (description.type === "offer") {
        this._negotiated = true;
        this._role = "answerer";
      }
      await this._rtc.setRemoteDescription({ type: description.type, sdp: description.sdp });
    }

    _iceGathered() {
      const pc = this._rtc;
      if (pc.iceGatheringState === "complete") return Promise.resolve();
      return new Promise((resolve) => {
        let timer;
        const done = () => {
          clearTimeout(timer);
          pc.removeEventListener("icegatheringstatechange", check);
          pc.removeEventListener("icecandidate", onCandidate);
          this._gatherDone = null;
          resolve();
        };
        const check = () => {
          if (pc.iceGatheringState === "complete") done();
        };
        const onCandidate = (e) => {
          if (!e.candidate) done();
        };
        pc.addEventListener("icegatheringstatechange", check);
        pc.addEventListener("icecandidate", onCandidate);
        timer = setTimeout(done, this._opts.iceGatheringTimeout);
        this._gatherDone = done; // close() ends the wait
      });
    }

    _checkOpen(what) {
      if (this._isClosed || this._closing) {
        throw new SubscriptionClosed("RTCConnection is closed; cannot run " + what, {
          cause: this._err || undefined,
        });
      }
    }

    // ------------------------------------------------------------------ messages

    /**
     * Send a value on the default channel (see the message rule). Queued, in order, until the
     * channel opens (at most maxQueued messages).
     * @throws {TypeError} the value cannot be encoded (nothing sent, the connection keeps working).
     * @throws {SubscriptionFull} too many messages waiting.
     * @throws {SubscriptionClosed} the connection is closed.
     */
    put_nowait(value) {
      if (this._isClosed || this._closing) {
        throw new SubscriptionClosed("RTCConnection is closed; did not send " + describe(value));
      }
      this._default.put_nowait(value);
    }

    /**
     * Receive the values that arrive on the default channel: `subscriber(value)` for each (a
     * function, an object with put_nowait, or nothing for a new Queue). Several subscribers
     * each get every value; values that arrived before the first subscriber go to it.
     * @returns the subscriber (the new Queue when none was given).
     */
    subscribe(subscriber) {
      return this._default.subscribe(subscriber);
    }

    /** Remove a subscriber. @returns {boolean} whether it was subscribed. */
    unsubscribe(subscriber) {
      return this._default.unsubscribe(subscriber);
    }

    /**
     * The next value from the default channel (a default Queue subscription).
     * @param {number} [timeout] milliseconds
     */
    get(timeout) {
      return this._default.get(timeout);
    }

    /** Send what a producer emits (a Keyboard, a Gamepad, a Queue) on the default channel. */
    putSubscription(source) {
      return this._default.putSubscription(source);
    }

    /** Counters of the default channel's messages (see DataChannel.statistics()). */
    statistics() {
      return this._default.statistics();
    }

    // ------------------------------------------------------------------ named channels

    /**
     * Open another data channel (with the same message rule); the peer gets it through its
     * onDataChannel. Best created before getLocalDescription().
     * @param {string} name a label other than "default" and "rtcbot-heartbeat", not in use.
     * @param {boolean} [ordered=true]
     * @returns {DataChannel}
     */
    addDataChannel(name, ordered = true) {
      this._checkOpen("addDataChannel()");
      this._checkChannelName(name);
      if (this._channels.has(name)) {
        throw new RTCBotError("a data channel named " + describe(name) + " already exists");
      }
      const dc = new DataChannel(name, this, {
        ordered: Boolean(ordered),
        maxQueued: this._opts.maxQueued,
        maxPending: this._opts.maxPending,
      });
      this._channels.set(name, dc);
      dc._local = true;
      if (this._link.state !== "lost") dc._attach(this._rtc.createDataChannel(name, { ordered: Boolean(ordered) }));
      return dc;
    }

    /**
     * A named data channel, created here or by the peer.
     * @param {string} name
     * @returns {DataChannel}
     * @throws {RTCBotError} when there is no channel of that name.
     */
    getDataChannel(name) {
      this._checkChannelName(name);
      const dc = this._channels.get(name);
      if (dc === undefined) {
        throw new RTCBotError(
          "no data channel named " + describe(name) + " (known: " +
            (Array.from(this._channels.keys()).join(", ") || "none") + ")",
        );
      }
      return dc;
    }

    /**
     * Receive the named data channels that the peer opens: `callback(dataChannel)` for each
     * (channels opened before the first subscriber are handed to it).
     * @param {Function|{put_nowait: Function}} [callback] nothing: a new Queue of channels.
     * @returns the callback (or the Queue).
     */
    onDataChannel(callback) {
      return this._remoteChannels.subscribe(callback);
    }

    _checkChannelName(name) {
      if (typeof name !== "string" || name.length === 0) {
        throw new TypeError("a data channel name must be a non-empty string, got " + describe(name));
      }
      if (name === DEFAULT_LABEL || name === HEARTBEAT_LABEL) {
        throw new RTCBotError(
          describe(name) + " is reserved: use conn.put_nowait/conn.subscribe for the default channel",
        );
      }
    }

    _onRemoteChannel(channel) {
      if (this._isClosed || this._closing) return;
      if (channel.label === DEFAULT_LABEL) {
        if (this._default.channel === null) this._default._attach(channel);
        return;
      }
      if (channel.label === HEARTBEAT_LABEL) return;
      const existing = this._channels.get(channel.label);
      if (existing !== undefined && !existing._local && existing.channel === null && !existing.closed) {
        existing._attach(channel); // a resumed session: the peer's channel on the new transport
        return;
      }
      const dc = new DataChannel(channel.label, this, {
        ordered: channel.ordered,
        maxQueued: this._opts.maxQueued,
        maxPending: this._opts.maxPending,
      });
      const old = this._channels.get(channel.label);
      if (old !== undefined) old.close();
      this._channels.set(channel.label, dc);
      dc.onClose(() => {
        if (this._channels.get(channel.label) === dc) this._channels.delete(channel.label);
      });
      dc._attach(channel);
      this._remoteChannels.emit(dc);
    }

    _maxMessageSize() {
      const sctp = this._rtc.sctp;
      return sctp && Number.isFinite(sctp.maxMessageSize) && sctp.maxMessageSize > 0
        ? sctp.maxMessageSize
        : 0;
    }

    // ------------------------------------------------------------------ media

    _onTrack(event) {
      if (this._isClosed) return;
      const handler = event.track.kind === "video" ? this.video : event.track.kind === "audio" ? this.audio : null;
      if (handler !== null) handler._onTrack(event, this._opts.lowLatency);
    }

    // ------------------------------------------------------------------ heartbeat

    _setupHeartbeat() {
      const pc = this._rtc;
      const hb = pc.createDataChannel(HEARTBEAT_LABEL, {
        negotiated: true,
        id: HEARTBEAT_ID,
        ordered: false,
        maxRetransmits: 0,
      });
      this._hb = hb;
      hb.addEventListener("open", () => {
        if (pc === this._rtc) this._startHeartbeat();
      });
      hb.addEventListener("message", (e) => {
        if (pc === this._rtc) this._onHeartbeat(e.data);
      });
    }

    _startHeartbeat() {
      if (this._hbTimer !== null || this._isClosed || this._closing) return;
      this._hbTimer = setInterval(() => this._heartbeatTick(), this._opts.heartbeatInterval);
      this._heartbeatTick();
    }

    _heartbeatTick() {
      const now = performance.now();
      if (this._hbLastHeard !== null && now - this._hbLastHeard >= this._opts.heartbeatTimeout) {
        const seconds = this._opts.heartbeatTimeout / 1000;
        this._linkLost(
          new RTCBotError("the peer vanished: no heartbeat for " + seconds + " s"),
        );
        return;
      }
      if (this._hb.readyState === "open") {
        try {
          const resume = this._resumeSignal !== null && this._opts.resumeWindow !== 0 && this._role === "offerer";
          this._hb.send('{"ping":' + now + (resume ? ',"resume":true}' : "}"));
          this._hbStats.pingsSent += 1;
        } catch (e) {
          // the channel is closing; the close events follow
        }
      }
    }

    _onHeartbeat(data) {
      if (this._isClosed) return;
      const now = performance.now();
      this._hbLastHeard = now;
      if (typeof data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(data);
      } catch (e) {
        return;
      }
      if (msg === null || typeof msg !== "object") return;
      if (msg.bye === true) {
        this._peerSaidBye = true; // it closes on purpose: no resume
        this.close();
        return;
      }
      if (typeof msg.ping === "number") {
        try {
          this._hb.send('{"pong":' + JSON.stringify(msg.ping) + "}");
        } catch (e) {
          // closing
        }
      } else if (typeof msg.pong === "number") {
        const rtt = now - msg.pong;
        if (rtt >= 0 && rtt < 600000) {
          const s = this._hbStats;
          s.pongsReceived += 1;
          s.rtt = rtt;
          s.rttMin = s.rttMin === null ? rtt : Math.min(s.rttMin, rtt);
          s.rttAvg = s.rttAvg === null ? rtt : s.rttAvg + (rtt - s.rttAvg) / 8;
        }
      }
    }

    // Any message from the peer proves it alive (once it speaks heartbeat at all).
    _heard() {
      if (this._hbLastHeard !== null) this._hbLastHeard = performance.now();
    }

    // ------------------------------------------------------------------ state and close

    _onConnectionState() {
      const state = this._rtc.connectionState;
      if (state === "failed") {
        this._linkLost(new RTCBotError("the connection failed (ICE or DTLS): the peer is unreachable"));
      } else if (state === "closed") {
        this.close();
      }
    }

    _onDefaultClosed() {
      // The peer closed the default channel or the whole connection: a normal end.
      if (!this._isClosed && !this._closing) this.close();
    }

    /**
     * Statistics: the heartbeat round-trip time (`rtt`, ms), connection states, the selected
     * candidate pair, per-track video/audio numbers (bitrate in kbit/s since the previous
     * call) and message counters.
     * @returns {Promise<RTCConnectionStats>}
     */
    async stats() {
      const s = this._hbStats;
      const out = {
        connectionState: this._rtc.connectionState,
        iceConnectionState: this._rtc.iceConnectionState,
        rtt: s.rtt,
        heartbeat: {
          rtt: s.rtt,
          rttMin: s.rttMin,
          rttAvg: s.rttAvg,
          pingsSent: s.pingsSent,
          pongsReceived: s.pongsReceived,
          peerSpeaksHeartbeat: this._hbLastHeard !== null,
          silence: this._hbLastHeard === null ? null : performance.now() - this._hbLastHeard,
        },
        candidatePair: null,
        messages: this._default.statistics(),
        channels: {},
        video: { inbound: [], outbound: [] },
        audio: { inbound: [], outbound: [] },
      };
      for (const [name, dc] of this._channels) out.channels[name] = dc.statistics();
      if (this._isClosed) return out;
      const report = await this._rtc.getStats();
      let pairId = null;
      report.forEach((r) => {
        if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
      });
      const seen = new Set();
      report.forEach((r) => {
        if (r.type === "candidate-pair" && (r.id === pairId || (pairId === null && r.nominated && r.state === "succeeded"))) {
          const local = report.get(r.localCandidateId);
          const remote = report.get(r.remoteCandidateId);
          out.candidatePair = {
            rtt: r.currentRoundTripTime === undefined ? null : r.currentRoundTripTime * 1000,
            availableOutgoingBitrate: r.availableOutgoingBitrate === undefined ? null : r.availableOutgoingBitrate,
            bytesSent: r.bytesSent,
            bytesReceived: r.bytesReceived,
            local: local ? { type: local.candidateType, protocol: local.protocol, address: local.address, port: local.port } : null,
            remote: remote ? { type: remote.candidateType, protocol: remote.protocol, address: remote.address, port: remote.port } : null,
          };
        }
        if ((r.type === "inbound-rtp" || r.type === "outbound-rtp") && (r.kind === "video" || r.kind === "audio")) {
          seen.add(r.id);
          const inbound = r.type === "inbound-rtp";
          const bytes = inbound ? r.bytesReceived : r.bytesSent;
          const prev = this._prevBytes.get(r.id);
          let bitrate = null;
          if (prev && r.timestamp > prev.timestamp) {
            bitrate = ((bytes - prev.bytes) * 8) / (r.timestamp - prev.timestamp); // kbit/s
          }
          this._prevBytes.set(r.id, { bytes, timestamp: r.timestamp });
          const item = { id: r.id, mid: r.mid === undefined ? null : r.mid, bitrate };
          if (inbound) {
            Object.assign(item, {
              trackIdentifier: r.trackIdentifier,
              bytesReceived: r.bytesReceived,
              packetsReceived: r.packetsReceived,
              packetsLost: r.packetsLost,
              jitter: r.jitter === undefined ? null : r.jitter * 1000,
              jitterBufferDelay:
                r.jitterBufferEmittedCount > 0 ? (r.jitterBufferDelay / r.jitterBufferEmittedCount) * 1000 : null,
            });
            if (r.kind === "video") {
              Object.assign(item, {
                framesReceived: r.framesReceived,
                framesDecoded: r.framesDecoded,
                framesDropped: r.framesDropped,
                framesPerSecond: r.framesPerSecond === undefined ? null : r.framesPerSecond,
                frameWidth: r.frameWidth,
                frameHeight: r.frameHeight,
                keyFramesDecoded: r.keyFramesDecoded,
                decodeTime: r.framesDecoded > 0 ? (r.totalDecodeTime / r.framesDecoded) * 1000 : null,
              });
            }
          } else {
            Object.assign(item, { bytesSent: r.bytesSent, packetsSent: r.packetsSent });
            if (r.kind === "video") {
              Object.assign(item, {
                framesSent: r.framesSent,
                framesEncoded: r.framesEncoded,
                framesPerSecond: r.framesPerSecond === undefined ? null : r.framesPerSecond,
                frameWidth: r.frameWidth,
                frameHeight: r.frameHeight,
              });
            }
          }
          out[r.kind][inbound ? "inbound" : "outbound"].push(item);
        }
      });
      for (const id of this._prevBytes.keys()) if (!seen.has(id)) this._prevBytes.delete(id);
      return out;
    }

    /**
     * Close everything: named channels, the default channel, the heartbeat and the peer
     * connection; end subscriptions; fire onClose. Idempotent, never throws; runs by itself on
     * pagehide. Local tracks given to putSubscription are not stopped (they are yours).
     * @returns {Promise<void>} already resolved (so `await conn.close()` works).
     */
    close() {
      if (this._isClosed || this._closing) return Promise.resolve();
      this._closing = true;
      if (this._hbTimer !== null) clearInterval(this._hbTimer);
      this._hbTimer = null;
      for (const t of [this._resumeTimer, this._windowTimer]) if (t !== null) clearTimeout(t);
      this._resumeTimer = this._windowTimer = null;
      if (this._hb !== null && this._hb.readyState === "open") {
        for (let i = 0; i < 3; i++) {
          try {
            this._hb.send('{"bye":true}'); // we close on purpose: the peer need not wait
          } catch (e) {
            break;
          }
        }
      }
      for (const kind of ["lost", "restored"]) for (const resolve of this._linkWaiters[kind].splice(0)) resolve(null);
      if (typeof window !== "undefined" && window.removeEventListener) {
        window.removeEventListener("pagehide", this._onPageHide);
      }
      for (const dc of Array.from(this._channels.values())) dc.close();
      this._channels.clear();
      this._default.close();
      this._remoteChannels.close();
      try {
        if (this._hb !== null && this._hb.readyState !== "closed") this._hb.close();
      } catch (e) {
        // already gone
      }
      this.video.close();
      this.audio.close();
      for (const [type, fn] of this._pcListeners) this._rtc.removeEventListener(type, fn);
      try {
        this._rtc.close();
      } catch (e) {
        // already closed
      }
      if (this._gatherDone) this._gatherDone();
      this._markClosed();
      return Promise.resolve();
    }
  }

  const RTC_OPTIONS = [
    "heartbeat",
    "heartbeatInterval",
    "heartbeatTimeout",
    "iceGatheringTimeout",
    "maxQueued",
    "maxPending",
    "lowLatency",
    "closeOnPageHide",
    "resumeWindow",
  ];

  // ------------------------------------------------------------------------------- inputs

  function isEditable(el) {
    if (!el || typeof el !== "object") return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  /**
   * Keyboard events of the page, as values ready to send:
   * `{type: "keydown"|"keyup", altKey, shiftKey, ctrlKey, metaKey, key, code, keyCode, timestamp}`
   * with `timestamp` in milliseconds since 1970 (from the event's own time). Auto-repeated
   * keydowns are not emitted. Keys typed into inputs, textareas, selects and contenteditable
   * elements are left alone (a key already held is still released). When the window loses
   * focus, every held key gets a keyup (so a robot does not keep driving).
   *
   * The browser's default action is prevented only for the keys in `capture` (matched against
   * `event.key` or `event.code`, e.g. `["ArrowUp", "ArrowDown", " "]` or `["KeyW"]`), and never
   * while typing in a field.
   *
   * `const kb = new rtcbot.Keyboard({capture: ["ArrowUp", "ArrowDown"]}); kb.subscribe(conn.put_nowait)`
   */
  class Keyboard extends EventHandler {
    /**
     * @param {{capture?: string[], target?: EventTarget}} [options]
     */
    constructor(options = undefined) {
      super();
      const opts = options || {};
      const capture = opts.capture === undefined ? [] : opts.capture;
      if (!Array.isArray(capture) || capture.some((k) => typeof k !== "string")) {
        throw new TypeError("Keyboard capture must be an array of key or code names, got " + describe(capture));
      }
      this._capture = new Set(capture);
      this._target = opts.target || window;
      this._down = new Map();
      this._fanout = new Fanout("Keyboard");
      this._onDown = (e) => this._keydown(e);
      this._onUp = (e) => this._keyup(e);
      this._onBlur = (e) => {
        if (e.target === window || e.target === this._target) this._releaseAll();
      };
      this._target.addEventListener("keydown", this._onDown);
      this._target.addEventListener("keyup", this._onUp);
      window.addEventListener("blur", this._onBlur);
      this._setReady();
    }

    /**
     * Receive key events (several subscribers each get every event).
     * @returns the subscriber (or a new Queue when none was given).
     */
    subscribe(subscriber) {
      return this._fanout.subscribe(subscriber);
    }

    /** Remove a subscriber. @returns {boolean} */
    unsubscribe(subscriber) {
      return this._fanout.unsubscribe(subscriber);
    }

    /** The keys held down now (by `code`, or `key` when the event has no code). */
    get pressed() {
      return Array.from(this._down.keys());
    }

    _captured(e) {
      return this._capture.has(e.key) || this._capture.has(e.code);
    }

    _event(type, e, timestamp) {
      return {
        type,
        altKey: e.altKey,
        shiftKey: e.shiftKey,
        ctrlKey: e.ctrlKey,
        metaKey: e.metaKey,
        key: e.key,
        code: e.code,
        keyCode: e.keyCode,
        timestamp,
      };
    }

    _keydown(e) {
      const editable = isEditable(e.target) || isEditable(document.activeElement);
      if (this._captured(e) && !editable) e.preventDefault();
      const id = e.code || e.key;
      if (e.repeat || this._down.has(id) || editable) return;
      const event = this._event("keydown", e, epochMs(e.timeStamp));
      this._down.set(id, event);
      this._fanout.emit(event);
    }

    _keyup(e) {
      const editable = isEditable(e.target) || isEditable(document.activeElement);
      if (this._captured(e) && !editable) e.preventDefault();
      const id = e.code || e.key;
      const wasDown = this._down.delete(id);
      if (!wasDown && editable) return;
      this._fanout.emit(this._event("keyup", e, epochMs(e.timeStamp)));
    }

    _releaseAll() {
      const now = Date.now();
      for (const [id, down] of Array.from(this._down)) {
        this._down.delete(id);
        this._fanout.emit(Object.assign({}, down, { type: "keyup", timestamp: now }));
      }
    }

    /** Stop listening (removes the event listeners). @returns {Promise<void>} */
    close() {
      if (this._isClosed) return Promise.resolve();
      this._target.removeEventListener("keydown", this._onDown);
      this._target.removeEventListener("keyup", this._onUp);
      window.removeEventListener("blur", this._onBlur);
      this._down.clear();
      this._fanout.close();
      this._markClosed();
      return Promise.resolve();
    }
  }

  // All Gamepad objects share one polling timer.
  const gamepadPoller = {
    rateHz: 30,
    timer: null,
    pads: new Set(),
    add(pad) {
      this.pads.add(pad);
      if (this.timer === null) this.start();
    },
    remove(pad) {
      this.pads.delete(pad);
      if (this.pads.size === 0) this.stop();
    },
    start() {
      this.timer = setInterval(() => this.poll(), 1000 / this.rateHz);
    },
    stop() {
      if (this.timer !== null) clearInterval(this.timer);
      this.timer = null;
    },
    poll() {
      let pads = [];
      try {
        pads = (navigator.getGamepads && navigator.getGamepads()) || [];
      } catch (e) {
        pads = []; // e.g. a permissions policy forbids gamepads
      }
      for (const pad of Array.from(this.pads)) pad._poll(pads);
    },
  };

  /**
   * Set how often gamepads are polled (all of them; default 30 per second).
   * @param {number} rateHz polls per second.
   */
  function setGamepadRate(rateHz) {
    checkPositive("rateHz", rateHz);
    gamepadPoller.rateHz = rateHz;
    if (gamepadPoller.timer !== null) {
      gamepadPoller.stop();
      gamepadPoller.start();
    }
  }

  function snapshotPad(pad) {
    const buttons = [];
    const values = [];
    for (const b of Array.from(pad.buttons || [])) {
      const pressed = typeof b === "object" && b !== null ? Boolean(b.pressed) : Boolean(b);
      const value = typeof b === "object" && b !== null ? Number(b.value) : pressed ? 1 : 0;
      buttons.push(pressed);
      values.push(value);
    }
    return {
      type: "state",
      index: pad.index,
      id: String(pad.id),
      mapping: pad.mapping === undefined ? "" : String(pad.mapping),
      buttons,
      buttonValues: values,
      axes: Array.from(pad.axes || [], Number),
      timestamp: typeof pad.timestamp === "number" ? epochMs(pad.timestamp) : Date.now(),
    };
  }

  /**
   * One gamepad, by its browser index (`gamepad.index`), polled with navigator.getGamepads().
   * Emits `{type: "btn<j>", value: true|false}` when button j is pressed or released and
   * `{type: "axis<j>", value: number}` when axis j moves; with `{state: true}` also a full
   * snapshot `{type: "state", index, id, mapping, buttons: bool[], buttonValues: number[],
   * axes: number[], timestamp}` after each change. Each poll is compared with a copy of the
   * previous state, so it works whether the browser returns fresh snapshots or live objects.
   * When the pad disappears, held buttons are released and axes return to 0 (events emitted).
   * Browsers show a pad to the page only after one of its buttons was pressed.
   */
  class Gamepad extends EventHandler {
    /**
     * @param {number} [index=0] the browser's gamepad index.
     * @param {{state?: boolean}} [options]
     */
    constructor(index = 0, options = undefined) {
      super();
      /** The browser gamepad index this object follows. @type {number} */
      this.index = checkCount("index", index, 0);
      this._emitState = Boolean(options && options.state);
      this._prev = null;
      /** The latest snapshot (a copy), or null while the pad is not connected. */
      this.state = null;
      this._fanout = new Fanout("Gamepad");
      gamepadPoller.add(this);
    }

    /** True while the pad is connected. */
    get connected() {
      return this.state !== null;
    }

    /**
     * Receive gamepad events (several subscribers each get every event).
     * @returns the subscriber (or a new Queue when none was given).
     */
    subscribe(subscriber) {
      return this._fanout.subscribe(subscriber);
    }

    /** Remove a subscriber. @returns {boolean} */
    unsubscribe(subscriber) {
      return this._fanout.unsubscribe(subscriber);
    }

    _poll(pads) {
      if (this._isClosed) return;
      let pad = null;
      for (const p of Array.from(pads)) {
        if (p && p.index === this.index && p.connected !== false) {
          pad = p;
          break;
        }
      }
      const cur = pad === null ? null : snapshotPad(pad);
      const prev = this._prev;
      const events = [];
      const nb = Math.max(cur ? cur.buttons.length : 0, prev ? prev.buttons.length : 0);
      for (let j = 0; j < nb; j++) {
        const was = prev ? Boolean(prev.buttons[j]) : false;
        const now = cur ? Boolean(cur.buttons[j]) : false;
        if (was !== now) events.push({ type: "btn" + j, value: now });
      }
      const na = Math.max(cur ? cur.axes.length : 0, prev ? prev.axes.length : 0);
      for (let j = 0; j < na; j++) {
        const was = prev && j < prev.axes.length ? prev.axes[j] : 0;
        const now = cur && j < cur.axes.length ? cur.axes[j] : 0;
        if (was !== now) events.push({ type: "axis" + j, value: now });
      }
      const valuesChanged =
        cur !== null && prev !== null && cur.buttonValues.some((v, j) => v !== prev.buttonValues[j]);
      this._prev = cur;
      this.state = cur;
      if (cur !== null) this._setReady();
      for (const ev of events) this._fanout.emit(ev);
      if (this._emitState && (events.length > 0 || valuesChanged || (cur !== null && prev === null))) {
        this._fanout.emit(cur === null ? { type: "state", index: this.index, id: null, mapping: "", buttons: [], buttonValues: [], axes: [], timestamp: Date.now() } : cur);
      }
    }

    /** Stop polling. @returns {Promise<void>} */
    close() {
      if (this._isClosed) return Promise.resolve();
      gamepadPoller.remove(this);
      this._fanout.close();
      this._markClosed();
      return Promise.resolve();
    }
  }

  // ------------------------------------------------------------------------------- safety

  // The browser half of rtcbot.safety.SafetyGate (Python). The robot holds the truth (who
  // drives, the E-stop latch, the limits, the slow-down); this class shows it, sends the
  // operator's actions, and repeats the operator's intent at a steady rate.

  const SAFETY_ROLES = ["driver", "viewer"];

  function safetyText(value, limit) {
    return typeof value === "string" ? value.slice(0, limit) : null;
  }

  function finiteOrNull(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  }

  // The robot's state message, checked field by field (anything a peer sends is hostile).
  function checkSafetyState(raw) {
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return null;
    const counts = (obj) => {
      const out = {};
      if (obj && typeof obj === "object" && !Array.isArray(obj)) {
        for (const [k, v] of Object.entries(obj).slice(0, 32)) {
          if (typeof v === "number" && Number.isFinite(v)) out[String(k).slice(0, 40)] = v;
        }
      }
      return out;
    };
    const request = raw.request && typeof raw.request === "object" ? {
      from: raw.request.from,
      expires_in_ms: finiteOrNull(raw.request.expires_in_ms),
    } : null;
    return {
      estop: raw.estop === true,
      estop_reason: safetyText(raw.estop_reason, 200),
      driver: typeof raw.driver === "number" || typeof raw.driver === "string" ? raw.driver : null,
      request,
      mode: ["normal", "slow", "stopped"].includes(raw.mode) ? raw.mode : "normal",
      scale: finiteOrNull(raw.scale),
      latency_ms: finiteOrNull(raw.latency_ms),
      latency_cause: safetyText(raw.latency_cause, 40),
      limits_hit: counts(raw.limits_hit),
      refused: counts(raw.refused),
      last_refusal: safetyText(raw.last_refusal, 200),
      output: counts(raw.output),
    };
  }

  /**
   * The operator's side of a robot's safety gate (`rtcbot.safety.SafetyGate` in Python),
   * over `conn` (an RTCConnection or anything with subscribe/put_nowait).
   *
   * What it does: reads the robot's state (`state`, `role`: "driver" or "viewer"; re-read at
   * each connect, so a reload shows a latched E-stop); sends E-stop (`estop()`, the
   * `estopKeys` of a `keyboard`, the `estopButton` of a `gamepad`), release, hand-over
   * (`requestControl`, `accept`, `deny`, `takeOver(token)`) and latency reports; and, while
   * this page drives and is visible, sends the operator's intent (`setIntent(obj)` or the
   * `intent()` function) as `{type: "control", ...intent}` at once on change and every
   * 1000/`rateHz` ms, so the robot's gate sees a steady stream (a lost key-up never leaves the
   * robot driving; silence latches its E-stop).
   *
   * `subscribe(cb)` receives `{type: "state", role, you, state}` after each update from the
   * robot, `{type: "event", event: {...}}` for each robot event (estop, release, driver,
   * request, request_ended, slowdown, expired...), and `{type: "refused", action, reason}`.
   *
   * @example
   * const safety = new rtcbot.Safety(conn, {keyboard, gamepad, intent: () => ({forward, turn})});
   * safety.subscribe((update) => show(safety.state, safety.role));
   */
  class Safety extends EventHandler {
    /**
     * @param {object} conn the connection to the robot.
     * @param {{keyboard?: Keyboard, estopKeys?: string[], gamepad?: Gamepad,
     *          estopButton?: number, intent?: () => object, rateHz?: number,
     *          clock?: () => number}} [options] `clock()`: the robot's time in ms (the page's
     *          estimate); when given, each intent message carries it as `sent`, so the robot
     *          knows its age and drops stale ones.
     */
    constructor(conn, options = undefined) {
      super();
      if (!conn || typeof conn.put_nowait !== "function" || typeof conn.subscribe !== "function") {
        throw new TypeError("Safety needs a connection with put_nowait and subscribe, got " + describe(conn));
      }
      const opts = options || {};
      this.conn = conn;
      /** The robot's last state (see rtcbot.safety), or null before the first update. */
      this.state = null;
      /** "driver", "viewer", or null before the first update. */
      this.role = null;
      /** This page's operator id on the robot, or null. */
      this.you = null;
      this.sent = 0;
      this._intent = null;
      this._intentFn = typeof opts.intent === "function" ? opts.intent : null;
      this._clock = typeof opts.clock === "function" ? opts.clock : null;
      this._lastSent = null;
      this._fanout = new Fanout("Safety");
      this._estopKeys = new Set(opts.estopKeys === undefined ? ["Space"] : opts.estopKeys);
      this._onMessage = (message) => this._receive(message);
      conn.subscribe(this._onMessage);
      this._unhooks = [];
      if (opts.keyboard) {
        const onKey = (e) => {
          if (e.type === "keydown" && (this._estopKeys.has(e.code) || this._estopKeys.has(e.key))) {
            this.estop("key " + (e.code || e.key));
          }
        };
        opts.keyboard.subscribe(onKey);
        this._unhooks.push(() => opts.keyboard.unsubscribe(onKey));
      }
      if (opts.gamepad) {
        const button = "btn" + checkCount("estopButton", opts.estopButton === undefined ? 1 : opts.estopButton, 0);
        const onPad = (e) => {
          if (e.type === button && e.value === true) this.estop("gamepad button " + button.slice(3));
        };
        opts.gamepad.subscribe(onPad);
        this._unhooks.push(() => opts.gamepad.unsubscribe(onPad));
      }
      const rate = opts.rateHz === undefined ? 10 : checkPositive("rateHz", opts.rateHz);
      this._timer = setInterval(() => this._tick(), 1000 / rate);
      if (typeof conn.onReady === "function") {
        conn.onReady(() => this._send({ type: "safety", action: "state" }));
      }
      if (typeof conn.onClose === "function") conn.onClose(() => this.close());
      this._setReady();
    }

    /** True while this page drives (according to the robot). */
    get driving() {
      return this.role === "driver";
    }

    /** Receive updates (see the class docs). @returns the subscriber (or a new Queue). */
    subscribe(subscriber) {
      return this._fanout.subscribe(subscriber);
    }

    /** Remove a subscriber. @returns {boolean} */
    unsubscribe(subscriber) {
      return this._fanout.unsubscribe(subscriber);
    }

    /** Latch the robot's E-stop (any page may, driver or viewer). */
    estop(reason = "E-stop button") {
      this._send({ type: "safety", action: "estop", reason: String(reason).slice(0, 100) });
    }

    /** Release the E-stop (only the driver; the robot says if it refused). */
    release() {
      this._send({ type: "safety", action: "release" });
    }

    /** Ask the driver for control (a viewer). */
    requestControl() {
      this._send({ type: "safety", action: "request" });
    }

    /** Hand control to the viewer who asked (the driver). */
    accept() {
      this._send({ type: "safety", action: "accept" });
    }

    /** Keep control: refuse the pending request (the driver). */
    deny() {
      this._send({ type: "safety", action: "deny" });
    }

    /** Take control at once with the robot's admin token. */
    takeOver(token) {
      this._send({ type: "safety", action: "takeover", token: String(token) });
    }

    /**
     * Tell the robot how slow the link is: `{glass_ms, rtt_ms}` (either may be missing).
     * @param {{glass_ms?: number|null, rtt_ms?: number|null}} latency
     */
    reportLatency(latency) {
      const message = { type: "safety", action: "latency" };
      for (const key of ["glass_ms", "rtt_ms"]) {
        const v = latency ? latency[key] : undefined;
        if (typeof v === "number" && Number.isFinite(v) && v >= 0) message[key] = v;
      }
      if (Object.keys(message).length > 2) this._send(message);
    }

    /** The operator's intent (an object of axis values); sent at once if it changed. */
    setIntent(intent) {
      this._intent = intent;
      this._tick(true);
    }

    /** Send the intent at once if it changed (call it when a key or a stick changes). */
    update() {
      this._tick(true);
    }

    _currentIntent() {
      if (this._intentFn !== null) {
        try {
          return this._intentFn();
        } catch (e) {
          console.error("rtcbot: Safety intent() failed:", e);
          return null;
        }
      }
      return this._intent;
    }

    _tick(onChange = false) {
      if (this._isClosed || this.role !== "driver") return;
      if (typeof document !== "undefined" && document.hidden) return; // a hidden tab goes quiet
      const intent = this._currentIntent();
      if (intent === null || typeof intent !== "object") return;
      const text = JSON.stringify(intent);
      if (onChange && text === this._lastSent) return;
      this._lastSent = text;
      const message = Object.assign({ type: "control" }, intent);
      if (this._clock !== null) {
        const sent = this._clock();
        if (typeof sent === "number" && Number.isFinite(sent)) message.sent = sent;
      }
      this._send(message);
      this.sent += 1;
    }

    _send(message) {
      if (this._isClosed) return;
      try {
        this.conn.put_nowait(message);
      } catch (e) {
        console.warn("rtcbot: Safety could not send", message.action || message.type, e);
      }
    }

    _receive(message) {
      if (!message || typeof message !== "object" || message.type !== "safety") return;
      if (typeof message.refused === "string") {
        this._fanout.emit({ type: "refused", action: safetyText(message.action, 40),
                            reason: message.refused.slice(0, 200) });
        return;
      }
      const state = checkSafetyState(message.state);
      if (state === null) return;
      const wasDriving = this.role === "driver";
      this.state = state;
      this.role = SAFETY_ROLES.includes(message.role) ? message.role : "viewer";
      this.you = typeof message.you === "number" || typeof message.you === "string" ? message.you : null;
      if (Array.isArray(message.events)) {
        for (const event of message.events.slice(0, 32)) {
          if (event && typeof event === "object" && typeof event.event === "string") {
            this._fanout.emit({ type: "event", event });
          }
        }
      }
      this._fanout.emit({ type: "state", role: this.role, you: this.you, state });
      if (!wasDriving && this.role === "driver") {
        this._lastSent = null;
        this._tick();
      }
    }

    /** Stop sending and listening. @returns {Promise<void>} */
    close() {
      if (this._isClosed) return Promise.resolve();
      clearInterval(this._timer);
      for (const unhook of this._unhooks) unhook();
      if (typeof this.conn.unsubscribe === "function") this.conn.unsubscribe(this._onMessage);
      this._fanout.close();
      this._markClosed();
      return Promise.resolve();
    }
  }

  // ------------------------------------------------------------------------------- websocket

  /**
   * A WebSocket carrying values by the message rule (for signalling through a relay, or
   * messages without WebRTC). `url` may be ws(s)://, http(s):// (converted) or relative to the
   * page. put_nowait queues until open; binary arrives as ArrayBuffer; several subscribers;
   * onReady/onClose/onError.
   */
  class Websocket extends MessageEndpoint {
    /**
     * @param {string} url
     * @param {{maxQueued?: number, maxPending?: number, protocols?: string|string[]}} [options]
     */
    constructor(url, options = undefined) {
      super("Websocket", options);
      if (typeof url !== "string" || url.length === 0) {
        throw new TypeError("Websocket url must be a non-empty string, got " + describe(url));
      }
      const base = typeof location !== "undefined" ? location.href : undefined;
      const u = new URL(url, base);
      if (u.protocol === "http:") u.protocol = "ws:";
      else if (u.protocol === "https:") u.protocol = "wss:";
      if (u.protocol !== "ws:" && u.protocol !== "wss:") {
        throw new TypeError("Websocket url must be ws(s):// or http(s)://, got " + describe(url));
      }
      /** The resolved ws:// or wss:// URL. @type {string} */
      this.url = u.href;
      this._what = "Websocket " + this.url;
      const protocols = options && options.protocols;
      /** The underlying WebSocket. */
      this.ws = protocols === undefined ? new WebSocket(this.url) : new WebSocket(this.url, protocols);
      this.ws.binaryType = "arraybuffer";
      this._wsListeners = [
        ["open", () => {
          this._setReady();
          this._flush();
        }],
        ["message", (e) => this._receive(e.data)],
        ["error", () => {
          this._setError(new RTCBotError("Websocket " + this.url + " failed (connection refused or lost)"));
        }],
        ["close", (e) => {
          if (!this._isClosed && e.code !== 1000 && e.code !== 1005 && !this._isReady) {
            this._setError(new RTCBotError("Websocket " + this.url + " closed before opening (code " + e.code + ")"));
          }
          this.close();
        }],
      ];
      for (const [type, fn] of this._wsListeners) this.ws.addEventListener(type, fn);
    }

    _canSend() {
      return this.ws.readyState === 1 && this.ws.bufferedAmount <= HIGH_WATER;
    }

    _transmit(data) {
      this.ws.send(data);
      this._stats.sent += 1;
      if (this.ws.bufferedAmount > HIGH_WATER && !this._drainTimer) {
        // WebSocket has no "buffered amount low" event: check again shortly.
        this._drainTimer = setTimeout(() => {
          this._drainTimer = null;
          this._flush();
        }, 20);
      }
    }

    /**
     * Close the socket (code 1000) and end subscriptions. Idempotent, never throws.
     * @returns {Promise<void>} already resolved.
     */
    close() {
      if (this._isClosed) return Promise.resolve();
      for (const [type, fn] of this._wsListeners) this.ws.removeEventListener(type, fn);
      clearTimeout(this._drainTimer);
      try {
        if (this.ws.readyState === 0 || this.ws.readyState === 1) this.ws.close(1000);
      } catch (e) {
        // already closing
      }
      this._closeEndpoint();
      this._markClosed();
      return Promise.resolve();
    }
  }

  // ------------------------------------------------------------------------------- exports

  // @@exports-begin
  const exported = {
    RTCConnection: RTCConnection,
    DataChannel: DataChannel,
    Keyboard: Keyboard,
    Gamepad: Gamepad,
    setGamepadRate: setGamepadRate,
    Safety: Safety,
    Websocket: Websocket,
    Queue: Queue,
    RTCBotError: RTCBotError,
    SubscriptionClosed: SubscriptionClosed,
    SubscriptionFull: SubscriptionFull,
    SessionGone: SessionGone,
    encodeMessage: encodeMessage,
    DEFAULT_RTC_CONFIGURATION: DEFAULT_RTC_CONFIGURATION,
    VERSION: VERSION,
  };
  // @@exports-end
  return Object.freeze(exported);
}
// @@factory-end
);
