"""The status page's style sheet and refresh script, as constants (no files to ship or find)."""

STYLE = """
:root{--bg:#f3f4f6;--card:#fff;--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--red:#b91c1c;--amber:#f59e0b;
--green:#15803d;--grey:#374151;--ok-bg:#dcfce7;--ok-ink:#166534;--warn-bg:#fef3c7;--warn-ink:#92400e;
--bad-bg:#fee2e2;--bad-ink:#991b1b;--track:#e5e7eb}
@media (prefers-color-scheme:dark){:root{--bg:#0b0f14;--card:#151b23;--ink:#e5e7eb;--muted:#9ca3af;
--line:#263040;--ok-bg:#052e16;--ok-ink:#86efac;--warn-bg:#3a2a05;--warn-ink:#fcd34d;--bad-bg:#3b0a0a;
--bad-ink:#fca5a5;--track:#263040}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);overflow-wrap:anywhere;
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main,footer{max-width:920px;margin:0 auto;padding:0 16px}
.top>span{min-width:0}
.top{display:flex;justify-content:space-between;align-items:baseline;flex-wrap:wrap;gap:4px 12px;
padding:14px 0 10px;color:var(--muted);font-size:13px}
.top b{color:var(--ink);font-size:16px}
.banner{border-radius:12px;padding:18px 20px;margin-bottom:16px;color:#fff;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.banner h1{margin:0;font-size:36px;line-height:1.1;letter-spacing:.05em;font-weight:800}
.banner p{margin:6px 0 0}
.banner ul{margin:10px 0 0;padding-left:20px}
.banner li{margin:4px 0;overflow-wrap:anywhere}
.banner .tag{display:inline-block;margin-top:8px;padding:2px 10px;border-radius:999px;font-size:12px;
font-weight:700;letter-spacing:.05em;background:rgba(0,0,0,.25)}
.halted{background:var(--red)}
.reducing{background:var(--amber);color:#1f1300}
.active{background:var(--green)}
.unknown{background:var(--grey)}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;margin-bottom:16px;overflow:hidden}
.card h2{margin:0;padding:10px 14px;font-size:12px;font-weight:700;text-transform:uppercase;letter-spacing:.08em;
color:var(--muted);border-bottom:1px solid var(--line)}
.row{display:flex;justify-content:space-between;align-items:center;gap:12px;padding:10px 14px;
border-top:1px solid var(--line)}
h2+.row{border-top:0}
.what{flex:1;min-width:0;overflow-wrap:anywhere}
.name{font-weight:600}
.detail{color:var(--muted);font-size:13px}
.count{flex:none;min-width:5.5em;text-align:right;font-variant-numeric:tabular-nums;font-weight:600}
.pill{flex:none;max-width:50%;overflow:hidden;text-overflow:ellipsis;border-radius:999px;padding:2px 10px;
font-size:12px;font-weight:700;text-transform:uppercase;letter-spacing:.04em;white-space:nowrap}
.pill.closed,.pill.ok,.pill.active{background:var(--ok-bg);color:var(--ok-ink)}
.pill.half_open,.pill.warn,.pill.reducing{background:var(--warn-bg);color:var(--warn-ink)}
.pill.open,.pill.forced_open,.pill.bad,.pill.halted{background:var(--bad-bg);color:var(--bad-ink)}
.pill.unknown{background:var(--track);color:var(--muted)}
.meter{height:6px;background:var(--track);border-radius:3px;margin-top:6px;overflow:hidden}
.meter span{display:block;height:100%;background:var(--green)}
.meter span.high{background:var(--amber)}
.meter span.full{background:var(--red)}
.note{margin:0;padding:10px 14px;color:var(--muted)}
.error{color:var(--bad-ink)}
#conn{position:sticky;top:0;z-index:1;margin:0;padding:8px 16px;text-align:center;font-weight:600;
background:var(--amber);color:#1f1300}
body.stale main{opacity:.55}
footer{padding-bottom:24px;color:var(--muted);font-size:13px}
footer a{color:inherit}
@media (max-width:480px){main,footer{padding:0 10px}.banner{padding:14px 16px}.banner h1{font-size:30px}
.row{padding:10px 12px}}
"""

SCRIPT = """
(function () {
  var conn = document.getElementById("conn");
  function refresh() {
    fetch(location.pathname, {cache: "no-store"})
      .then(function (reply) { return reply.text(); })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("status");
        if (!fresh) { throw new Error("no status in the page"); }
        document.getElementById("status").replaceWith(document.importNode(fresh, true));
        document.title = page.title;
        document.body.classList.remove("stale");
        conn.hidden = true;
      })
      .catch(function () {
        document.body.classList.add("stale");
        conn.hidden = false;
      })
      .then(function () { setTimeout(refresh, 1000); });
  }
  setTimeout(refresh, 1000);
})();
"""
"""Every second, fetch the page again and swap in its ``#status`` element (one node swap: no flicker).

The server renders the HTML, so the escaping and the layout live in one place (Python); while the
server cannot be reached the old content stays, dimmed, under a "connection lost" notice.
"""
