"""The report page's style sheet and its filter script: plain CSS and a few lines of plain
JavaScript, inlined in the page (no network, no framework)."""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
h2 { font-size: 1.2em; margin: 1.4em 0 .5em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .3em 1em .8em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.diag { background: #e3f4e6; font-weight: bold; }
th.sub { background: #f4f4f4; font-weight: normal; font-style: italic; }
caption { font-weight: bold; text-align: left; }
.confusion th, .confusion td { font-size: .85em; }
.tables { display: flex; flex-wrap: wrap; align-items: flex-start; }
.filters { position: sticky; top: 0; background: #fafafa; padding: .5em; border: 1px solid #ddd; z-index: 1; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid #ccc; border-radius: 4px; padding: 6px 8px; overflow-wrap: anywhere; }
.card.photo { width: 370px; }
.card.sentence { width: 100%; box-sizing: border-box; }
.card h4 { margin: .2em 0; font-size: .95em; word-break: break-all; }
.card img { display: block; max-width: 100%; }
.gold, .pred { display: inline-block; min-width: 5.5em; font-size: .8em; font-weight: bold; }
.gold { color: #00863c; } .pred { color: #c0008c; }
.sent .trg { background: #ffe08a; font-weight: bold; }
.sent .arg { background: #cfe3ff; }
.sent .trg.arg { background: linear-gradient(#ffe08a, #cfe3ff); }
sub.lbl { font-size: .7em; color: #555; margin-left: 1px; }
sub.lbl + sub.lbl { margin-left: .4em; }
ul.events, ul.errs { margin: .2em 0; padding-left: 1.2em; }
ul.events li.gold, ul.events li.pred { display: list-item; min-width: 0; font-weight: normal; font-size: 1em; }
.kind { font-weight: bold; }
.kind.missed { color: #b35900; } .kind.spurious { color: #c00000; }
.kind.wrong_type { color: #6a1b9a; } .kind.wrong_role { color: #00558c; }
.ok { color: #00863c; margin: .2em 0; } .warn { color: #b00; }
.legend span { margin-right: 1.5em; }
"""

SCRIPT = """
(function () {
  var typeBox = document.getElementById("filter-type");
  var errorBox = document.getElementById("filter-error");
  var shown = document.getElementById("filter-count");
  var cards = document.querySelectorAll(".card");
  function keep(card) {
    var types = JSON.parse(card.getAttribute("data-types"));
    var errors = JSON.parse(card.getAttribute("data-errors"));
    var t = typeBox.value, e = errorBox.value;
    var typeOk = t === "" || types.indexOf(t) >= 0;
    var errorOk = e === "" || (e === "any" ? errors.length > 0 : e === "none" ? errors.length === 0
                                                                             : errors.indexOf(e) >= 0);
    return typeOk && errorOk;
  }
  function apply() {
    var n = 0;
    for (var i = 0; i < cards.length; i++) {
      var ok = keep(cards[i]);
      cards[i].style.display = ok ? "" : "none";
      if (ok) n++;
    }
    shown.textContent = n + " of " + cards.length + " cards shown";
  }
  typeBox.addEventListener("change", apply);
  errorBox.addEventListener("change", apply);
  apply();
})();
"""
