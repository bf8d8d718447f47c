
"use strict";
// The battle browser. Every text comes from the JSON data element and is shown with textContent,
// never as markup. Battles are listed a page at a time and a battle's details are built when it is
// opened, so a page of 20,000 battles opens as fast as one of 20.
(function () {
  const data = JSON.parse(document.getElementById("arena-data").textContent);
  const S = data.strings;
  const PAGE_SIZE = 50;
  const FOLD_CHARS = 1500;
  const FOLD_LINES = 25;
  const $ = (id) => document.getElementById(id);
  const battles = data.battles;
  const byId = new Map(battles.map((b, i) => [b.id, i]));
  const haystacks = new Array(battles.length);
  const state = { shown: [], page: 0, rows: new Map() };

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function table(header, rows) {
    const t = el("table");
    const head = el("tr");
    header.forEach((h) => head.append(el("th", null, h)));
    t.append(head);
    rows.forEach((cells) => {
      const tr = el("tr");
      cells.forEach((c) => tr.append(el("td", null, c)));
      t.append(tr);
    });
    return t;
  }

  // -- the run's tables -----------------------------------------------------------------------------

  function showTables() {
    $("title").textContent = data.title || "pytest-arena";
    $("run-note").textContent = (data.run && data.run.note) || "";
    const box = $("rating-tables");
    if (data.ratings) showRating(box, data.ratings, null);
    (data.sets || []).forEach((set) => showRating(box, set, "question set " + set.name));
    if (typeof data.plot === "string" && data.plot.startsWith("data:image/png;base64,")) {
      const img = el("img");
      img.alt = "ratings with their 95% confidence intervals";
      img.src = data.plot;
      $("plot").append(img);
    }
    if (data.gates && data.gates.length) {
      $("gates").hidden = false;
      const t = table(["gate", "result", "detail"], []);
      data.gates.forEach((g) => {
        const tr = el("tr");
        tr.append(el("td", null, g.id), el("td", g.passed ? "passed" : "failed", g.passed ? "passed" : "failed"),
                  el("td", null, g.message));
        t.append(tr);
      });
      $("gate-table").append(t);
    }
    const flips = data.flips ? [].concat(data.flips) : [];
    if (flips.length) {
      $("flips").hidden = false;
      flips.forEach((f) => {
        if (f.title) $("flip-tables").append(el("h3", null, f.title));
        const t = table(f.header || [], f.rows || []);
        if (typeof f.link === "number") linkCells(t, f.link);
        $("flip-tables").append(t);
      });
    }
  }

  // The judge's measured biases (judge_bias.py): position, length, self-preference warnings.
  function showBias() {
    const lines = data.judge_bias ? [].concat(data.judge_bias) : [];
    if (!lines.length) return;
    $("bias").hidden = false;
    lines.forEach((line) => $("bias-lines").append(el("p", line.startsWith("WARNING") ? "note" : null, line)));
  }

  // The judge audit's tables (judge_audit.py): its figures, and the labels the judge disagreed with.
  function showAudit() {
    const audit = data.audit ? [].concat(data.audit) : [];
    if (!audit.length) return;
    $("audit").hidden = false;
    audit.forEach((a) => {
      if (a.title) $("audit-tables").append(el("h3", null, a.title));
      const t = table(a.header || [], a.rows || []);
      if (typeof a.link === "number") linkCells(t, a.link);
      $("audit-tables").append(t);
    });
  }

  // A column of battle IDs becomes links to the battles (only IDs this page holds).
  function linkCells(t, column) {
    t.querySelectorAll("tr").forEach((tr) => {
      const cell = tr.children[column];
      if (!cell || cell.tagName !== "TD" || !byId.has(cell.textContent)) return;
      const a = el("a", null, cell.textContent);
      a.href = "#" + cell.textContent;
      cell.replaceChildren(a);
    });
  }

  function showRating(box, rating, heading) {
    if (heading) box.append(el("h3", null, heading));
    box.append(table(rating.header, rating.rows));
    (rating.notes || []).forEach((n) => box.append(el("p", "note", n)));
  }

  // -- filters --------------------------------------------------------------------------------------

  const models = data.models;
  const question = (b) => data.questions[b.q];
  const pairKey = (b) => b.m.slice().sort((x, y) => x - y).join("-");

  function options(select, pairs) {
    select.replaceChildren();
    pairs.forEach(([value, label]) => {
      const o = el("option", null, label);
      o.value = value;
      select.append(o);
    });
  }

  function setUpFilters() {
    const used = new Set(battles.flatMap((b) => b.m));
    options($("f-model"), [["", "all models"], ...models.map((m, i) => [String(i), m]).filter(([i]) => used.has(+i))]);
    const pairs = new Map();
    battles.forEach((b) => {
      if (b.m.length === 2 && !pairs.has(pairKey(b))) pairs.set(pairKey(b), b.m.map((i) => models[i]).sort().join(" vs "));
    });
    options($("f-pair"), [["", "all pairs"], ...[...pairs].sort((x, y) => x[1].localeCompare(y[1]))]);
    $("f-pair").parentElement.hidden = pairs.size === 0;
    const categories = [...new Set(data.questions.map((q) => q.category))].sort();
    options($("f-category"), [["", "all categories"], ...categories.map((c) => [c, c])]);
    const verdicts = data.mode === "single"
      ? [["score", "scored"], ["error", "failed"]]
      : [["A", "A (left) won"], ["B", "B (right) won"], ["tie", "tie"], ["error", "failed"],
         ["model-won", "the chosen model won"], ["model-lost", "the chosen model lost"]];
    options($("f-verdict"), [["", "all verdicts"], ...verdicts]);
    let typing = null;
    ["f-model", "f-pair", "f-category", "f-verdict", "f-inconsistent"].forEach((id) =>
      $(id).addEventListener("change", () => refilter(0)));
    $("f-search").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => refilter(0), 200);
    });
    $("f-reset").addEventListener("click", () => { resetFilters(); refilter(0); });
    $("filters").addEventListener("submit", (e) => e.preventDefault());
  }

  function resetFilters() {
    ["f-model", "f-pair", "f-category", "f-verdict", "f-search"].forEach((id) => { $(id).value = ""; });
    $("f-inconsistent").checked = false;
  }

  function haystack(i) {
    if (haystacks[i] === undefined) {
      const b = battles[i], q = question(b), parts = [b.id, b.error || "", ...q.turns.map((t) => S[t])];
      b.answers.forEach((turns) => (turns || []).forEach((t) => parts.push(S[t])));
      b.replies.forEach((r) => parts.push(S[r.text], r.error || ""));
      haystacks[i] = parts.join("\n").toLowerCase();
    }
    return haystacks[i];
  }

  function wonBy(b, model) {
    const side = b.m.indexOf(model);
    return (b.verdict === "A" && side === 0) || (b.verdict === "B" && side === 1);
  }

  function matches(b, i, f) {
    if (f.model !== null && !b.m.includes(f.model)) return false;
    if (f.pair && pairKey(b) !== f.pair) return false;
    if (f.category && question(b).category !== f.category) return false;
    if (f.verdict === "model-won" || f.verdict === "model-lost") {
      if (f.model === null || b.verdict === "error" || b.verdict === "tie") return false;
      if (wonBy(b, f.model) !== (f.verdict === "model-won")) return false;
    } else if (f.verdict && b.verdict !== f.verdict) {
      return false;
    }
    if (f.inconsistent && b.consistent !== false) return false;
    return !f.search || haystack(i).includes(f.search);
  }

  function refilter(page) {
    const model = $("f-model").value;
    const f = {
      model: model === "" ? null : +model, pair: $("f-pair").value, category: $("f-category").value,
      verdict: $("f-verdict").value, inconsistent: $("f-inconsistent").checked,
      search: $("f-search").value.trim().toLowerCase(),
    };
    state.shown = [];
    battles.forEach((b, i) => { if (matches(b, i, f)) state.shown.push(i); });
    showPage(page);
  }

  // -- the list -------------------------------------------------------------------------------------

  function pages() { return Math.max(1, Math.ceil(state.shown.length / PAGE_SIZE)); }

  function showPage(page) {
    state.page = Math.min(Math.max(0, page), pages() - 1);
    const start = state.page * PAGE_SIZE, slice = state.shown.slice(start, start + PAGE_SIZE);
    state.rows = new Map();
    $("list").replaceChildren(...slice.map((i) => row(i)));
    const noun = data.mode === "single" ? "scorings" : "battles";
    $("count").textContent = `${state.shown.length} of ${battles.length} ${noun}` +
      (state.shown.length ? ` (showing ${start + 1}-${start + slice.length})` : "");
    [$("pager-top"), $("pager-bottom")].forEach(pager);
  }

  function pager(nav) {
    const prev = el("button", "prev", "< previous"), next = el("button", "next", "next >");
    prev.type = next.type = "button";
    prev.disabled = state.page === 0;
    next.disabled = state.page >= pages() - 1;
    prev.addEventListener("click", () => showPage(state.page - 1));
    next.addEventListener("click", () => showPage(state.page + 1));
    nav.replaceChildren(prev, el("span", "page", `page ${state.page + 1} of ${pages()}`), next);
  }

  function verdictText(b) {
    if (b.verdict === "score") return `score ${b.score}`;
    if (b.verdict === "A" || b.verdict === "B") return `${models[b.m[b.verdict === "A" ? 0 : 1]]} won`;
    return b.verdict === "tie" ? "tie" : "failed";
  }

  function row(i) {
    const b = battles[i], q = question(b);
    const box = el("details", "battle");
    box.dataset.id = b.id;
    const summary = el("summary");
    summary.append(el("span", "id", b.id), el("span", "models", b.m.map((m) => models[m]).join(" vs ")),
                   el("span", "badge " + ({ error: "error", A: "win", B: "win" }[b.verdict] || ""), verdictText(b)),
                   el("span", "badge", q.category));
    if (b.consistent === false) summary.append(el("span", "badge inconsistent", "position-inconsistent"));
    if (b.cached === true) summary.append(el("span", "badge", "cached"));
    box.append(summary);
    box.addEventListener("toggle", () => {
      if (!box.open) return;
      fill(box, i);
      if (location.hash !== "#" + b.id) history.replaceState(null, "", "#" + b.id);
    });
    state.rows.set(i, box);
    return box;
  }

  // -- one battle -----------------------------------------------------------------------------------

  function textBlock(text) {
    const wrap = el("div");
    if (text === "") {
      wrap.append(el("div", "missing", "(empty)"));
      return wrap;
    }
    const box = el("div", "text");
    const lines = text.split("\n");
    if (text.length <= FOLD_CHARS && lines.length <= FOLD_LINES) {
      box.textContent = text;
      wrap.append(box);
      return wrap;
    }
    const short = lines.slice(0, FOLD_LINES).join("\n").slice(0, FOLD_CHARS) + " ...";
    box.textContent = short;
    box.classList.add("folded");
    const button = el("button", "fold", `show all (${text.length} characters)`);
    button.type = "button";
    button.addEventListener("click", () => {
      const folded = box.classList.toggle("folded");
      box.textContent = folded ? short : text;
      button.textContent = folded ? `show all (${text.length} characters)` : "fold";
    });
    wrap.append(box, button);
    return wrap;
  }

  function turns(target, list, label) {
    if (!list) {
      target.append(el("div", "missing", "(no answer)"));
      return;
    }
    list.forEach((t, n) => {
      if (list.length > 1) target.append(el("div", "turn-label", `${label} ${n + 1}`));
      target.append(textBlock(S[t]));
    });
  }

  function fill(box, i) {
    if (box.dataset.filled) return;
    box.dataset.filled = "1";
    const b = battles[i], q = question(b), body = el("div", "body");
    const meta = [`question ${q.id}`, `category ${q.category}`];
    if (q.set) meta.push(`question set ${q.set}`);
    if (b.template) meta.push(`template ${b.template}`);
    if (b.cached !== undefined && b.cached !== null) meta.push(b.cached ? "cached" : "judged in this run");
    if (b.consistent === true) meta.push("both orders agree");
    if (b.consistent === false) meta.push("the two orders disagree (position-inconsistent)");
    body.append(el("p", "meta", meta.join(" · ")), el("p", "verdict", "verdict: " + verdictText(b)));
    if (b.error) body.append(el("h3", null, "error"), el("div", "error-text", b.error));
    body.append(el("h3", null, "question"));
    turns(body, q.turns, "turn");
    const sides = el("div", "sides");
    b.m.forEach((m, n) => {
      const side = el("div", "side");
      side.append(el("h3", null, (b.m.length > 1 ? ["A: ", "B: "][n] : "") + models[m]));
      turns(side, b.answers[n], "turn");
      sides.append(side);
    });
    body.append(el("h3", null, b.m.length > 1 ? "answers" : "answer"), sides);
    if (b.reference && q.reference) {
      body.append(el("h3", null, "reference answer"));
      turns(body, q.reference, "turn");
    }
    if (b.replies.length) body.append(el("h3", null, b.replies.length > 1 ? "judge replies" : "judge reply"));
    b.replies.forEach((r) => body.append(reply(b, r)));
    box.append(body);
  }

  function reply(b, r) {
    const box = el("div", "reply");
    const parts = [];
    if (r.judge) parts.push(`judge ${r.judge}`);
    if (r.turn !== undefined && r.turn !== null) parts.push(`turn ${r.turn}`);
    if (b.m.length > 1) parts.push(`shown as A: ${models[b.m[r.swapped ? 1 : 0]]}`);
    if (r.verdict === "A" || r.verdict === "B") parts.push(`verdict: ${models[b.m[r.verdict === "A" ? 0 : 1]]} won`);
    else if (r.verdict === "score") parts.push(`score ${r.score}`);
    else parts.push(`verdict: ${r.verdict === "tie" ? "tie" : "none"}`);
    if (r.cached === true) parts.push("from the review cache");
    if (r.cached === false) parts.push("asked in this run");
    box.append(el("div", "meta", parts.join(" · ")));
    if (r.error) box.append(el("div", "error-text", r.error));
    box.append(textBlock(S[r.text]));
    return box;
  }

  // -- a battle's URL fragment ----------------------------------------------------------------------

  function openFromHash() {
    let id = location.hash.slice(1);
    try {
      id = decodeURIComponent(id);
    } catch (error) {
      // a malformed %-escape: look the fragment up as it is
    }
    if (!id) return;
    const i = byId.get(id);
    if (i === undefined) {
      $("count").textContent = `no battle ${id} in this page; ` + $("count").textContent;
      return;
    }
    if (!state.shown.includes(i)) {
      resetFilters();
      refilter(0);
    }
    showPage(Math.floor(state.shown.indexOf(i) / PAGE_SIZE));
    const box = state.rows.get(i);
    fill(box, i);
    box.open = true;
    box.classList.add("highlight");
    box.scrollIntoView({ block: "start" });
  }

  showTables();
  showBias();
  showAudit();
  setUpFilters();
  refilter(0);
  openFromHash();
  window.addEventListener("hashchange", openFromHash);
  document.body.dataset.ready = "1";
})();
