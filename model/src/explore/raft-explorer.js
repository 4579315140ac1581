// Served by `raft-model explore` next to stateright's Explorer: a link made
// for other bounds, or a path that does not exist here, is said so on the
// page instead of a blank page or another path shown without a word.
(function () {
    "use strict";
    var here = window.RAFT_EXPLORER || {};

    function banner(id, text) {
        if (document.getElementById(id)) {
            return;
        }
        var div = document.createElement("div");
        div.id = id;
        div.setAttribute("role", "alert");
        div.style.cssText = "background:#fdecea;color:#7f0000;border:2px solid #b71c1c;" +
            "padding:8px 12px;margin:6px;font:14px sans-serif;white-space:pre-wrap";
        div.textContent = text;
        document.body.insertBefore(div, document.body.firstChild);
    }

    function serveHint() {
        return "This Explorer serves: " + here.bounds + "\n(started with: " + here.command +
            ")\nStart the Explorer with the command printed next to the link, then open it again.";
    }

    function clear(id) {
        var old = document.getElementById(id);
        if (old) {
            old.parentNode.removeChild(old);
        }
    }

    // Each navigation is judged afresh: a step chosen on the page has no
    // `bounds` and is a path of this Explorer.
    function checkBounds() {
        clear("raft-bounds-mismatch");
        clear("raft-path-missing");
        var query = (window.location.hash.split("?")[1] || "");
        var m = query.match(/(?:^|&)bounds=([^&]*)/);
        if (m && decodeURIComponent(m[1]) !== here.tag) {
            banner("raft-bounds-mismatch",
                "This link was made for other bounds (" + decodeURIComponent(m[1]) +
                "): the path it names is not shown here.\n" + serveHint());
        }
    }

    // app.js walks the link's action indices; one that does not exist here
    // ends in a rejected promise (a 404 from /.states or no such step).
    window.addEventListener("unhandledrejection", function (event) {
        event.preventDefault();
        banner("raft-path-missing",
            "The path of this link does not exist in this Explorer's state space " +
            "(it was probably made for other bounds).\n" + serveHint());
    });
    window.addEventListener("hashchange", checkBounds);
    checkBounds();
})();
