/* aceorch panel: the stream preview. Each started stream row gets a "play" button that opens the stream's HLS
   (/ace/manifest.m3u8 through the built-in proxy) in a <video>: with hls.js (vendored, hls.light.min.js) where
   Media Source Extensions play H.264, natively where the browser plays HLS itself, else a message saying why
   it cannot. The rows are re-rendered by panel.js; each new started row gets the button in a cell of its own, at its end. */
(function () {
  "use strict";
  const H264 = 'video/mp4; codecs="avc1.42E01E"';

  function hlsUrl(row) {
    const [keyType, key] = (row.title || "").split("\n")[0].split(" ");
    if (!key) return null;
    const name = keyType === "infohash" ? "infohash" : "id";
    return `/ace/manifest.m3u8?${name}=${encodeURIComponent(key)}`;
  }

  /** Why this browser cannot play the stream, or null when it can. */
  function cannotPlay(video) {
    if (window.Hls && window.Hls.isSupported()) {
      return window.MediaSource && MediaSource.isTypeSupported(H264) ? null
        : "this browser's Media Source Extensions do not decode H.264 (e.g. Chromium without proprietary codecs)";
    }
    if (video.canPlayType("application/vnd.apple.mpegurl")) return null;
    return "this browser plays neither HLS nor Media Source Extensions";
  }

  let hls = null;
  function dialog() {
    let d = document.getElementById("preview");
    if (d) return d;
    d = document.createElement("dialog");
    d.id = "preview";
    d.dataset.testid = "preview";
    d.innerHTML = '<p><strong data-testid="preview-title"></strong> <button type="button" data-testid="preview-close">close</button></p>' +
      '<video data-testid="preview-video" controls muted playsinline width="480"></video>' +
      '<p class="muted small" data-testid="preview-message"></p>';
    d.querySelector("button").addEventListener("click", () => d.close());
    d.addEventListener("close", () => {
      if (hls) { hls.destroy(); hls = null; }
      const v = d.querySelector("video");
      v.pause(); v.removeAttribute("src"); v.load();
    });
    document.body.appendChild(d);
    return d;
  }

  function play(url, title) {
    const d = dialog();
    const video = d.querySelector("video");
    const message = d.querySelector("[data-testid=preview-message]");
    d.querySelector("[data-testid=preview-title]").textContent = title;
    message.textContent = "";
    if (!d.open) d.showModal();
    const why = cannotPlay(video);
    d.dataset.playable = why ? "no" : "yes";
    if (why) { message.textContent = `Cannot play here: ${why}. Open ${url} in VLC or mpv.`; return; }
    if (window.Hls && window.Hls.isSupported()) {
      hls = new window.Hls({ liveSyncDurationCount: 2 });
      hls.on(window.Hls.Events.ERROR, (_e, data) => { if (data.fatal) message.textContent = `Playback error: ${data.details}`; });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else {
      video.src = url;
    }
    video.play().catch((err) => { message.textContent = `Playback did not start: ${err.message}`; });
  }

  function decorate(body) {
    for (const row of body.querySelectorAll("tr[data-status=started]")) {
      if (row.querySelector("[data-testid=stream-play]")) continue;
      const url = hlsUrl(row);
      if (!url) continue;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.dataset.testid = "stream-play";
      button.textContent = "play";
      button.title = `play ${url} here`;
      button.addEventListener("click", (ev) => { ev.stopPropagation(); play(url, row.title.split("\n")[0]); });
      const cell = document.createElement("td");
      cell.className = "right";
      cell.appendChild(button);
      row.appendChild(cell);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const body = document.getElementById("streams-body");
    if (!body) return;
    new MutationObserver(() => decorate(body)).observe(body, { childList: true });
    decorate(body);
  });
})();
