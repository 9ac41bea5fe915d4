/* veille's document view, one renderer for `veille predict --format html`, the page of
   `veille serve` (mode "live") and the errors.html of `veille evaluate` (mode "errors");
   the page around it is built by annotation/view.py.

   Article text is data: it is only ever set as text (Text nodes, textContent, title),
   never parsed as HTML. Offsets are code points, so the text is sliced as an array of
   code points, not by JavaScript's UTF-16 indices (an emoji would shift every span after it). */
"use strict";
(() => {
  const byId = (id) => document.getElementById(id);
  const meta = JSON.parse(byId("veille-meta").textContent);
  let docs = JSON.parse(byId("veille-docs").textContent);
  const errorsMode = meta.mode === "errors";
  const colors = new Map(meta.schema.entities.map((e) => [e.label, e.color]));
  const state = { hidden: new Set(), minScore: 0, errorsOnly: errorsMode, page: 0 };
  const STATUS = { missed: "manqué", spurious: "en trop" };

  /** An element whose children are nodes or strings (strings become Text nodes, never markup). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "dataset") {
        for (const [name, item] of Object.entries(value)) if (item != null) node.dataset[name] = String(item);
      } else if (key === "style") {
        for (const [name, item] of Object.entries(value)) node.style.setProperty(name, item);
      } else {
        node[key] = value;
      }
    }
    node.append(...children.filter((child) => child != null));
    return node;
  }

  const fmt = (score) => score.toFixed(2);
  const scoreShown = (item) => item.score == null || item.score >= state.minScore;
  const entityShown = (e) => e !== undefined && !state.hidden.has("e:" + e.label) && scoreShown(e);
  const relationShown = (r, entities) =>
    !state.hidden.has("r:" + r.label) && scoreShown(r) && entityShown(entities.get(r.head)) && entityShown(entities.get(r.tail));
  const flagged = (items) => items.some((item) => item.status === "missed" || item.status === "spurious");
  const hasError = (doc) => [doc, doc.gold].some((side) => side && (flagged(side.entities) || flagged(side.relations)));

  function tooltip(label, item) {
    const parts = [label];
    if (item.score != null) parts.push("score " + fmt(item.score));
    if (STATUS[item.status]) parts.push(STATUS[item.status]);
    return parts.join(" · ");
  }

  /** The text of [start, end) with the shown entities inside it as <mark> elements. */
  function spans(chars, start, end, entities) {
    const nodes = [];
    let cursor = start;
    for (const e of entities) {
      if (e.start < cursor || e.end > end || !entityShown(e)) continue;
      nodes.push(chars.slice(cursor, e.start).join(""));
      nodes.push(
        el(
          "mark",
          {
            className: ["ent", e.status].filter(Boolean).join(" "),
            title: tooltip(e.label, e),
            dataset: { id: e.id, label: e.label, start: e.start, end: e.end, score: e.score, status: e.status },
            style: { "--c": colors.get(e.label) || "#888888" },
          },
          chars.slice(e.start, e.end).join(""),
        ),
      );
      cursor = e.end;
    }
    nodes.push(chars.slice(cursor, end).join(""));
    return nodes;
  }

  /** « head —LABEL→ tail » for each shown relation whose head lies in [start, end). */
  function relationList(chars, relations, entities, start, end) {
    const mention = (e) => chars.slice(e.start, e.end).join("");
    const items = relations
      .filter((r) => relationShown(r, entities) && entities.get(r.head).start >= start && entities.get(r.head).start < end)
      .map((r) =>
        el(
          "li",
          {
            className: ["rel", r.status].filter(Boolean).join(" "),
            title: tooltip(r.label, r),
            dataset: { label: r.label, head: r.head, tail: r.tail, score: r.score, status: r.status },
          },
          el("span", { className: "arg" }, mention(entities.get(r.head))),
          " —",
          el("span", { className: "rel-label" }, r.label),
          "→ ",
          el("span", { className: "arg" }, mention(entities.get(r.tail))),
          r.score == null ? null : el("span", { className: "score" }, fmt(r.score)),
          STATUS[r.status] ? el("span", { className: "status" }, STATUS[r.status]) : null,
        ),
      );
    return items.length ? el("ul", { className: "rels" }, ...items) : null;
  }

  /** One side of a document (the prediction, or the gold): sentence by sentence, relations under each. */
  function side(doc, annotations, chars) {
    const entities = [...annotations.entities].sort((a, b) => a.start - b.start);
    const byEntityId = new Map(entities.map((e) => [e.id, e]));
    return (doc.sentences || [[0, chars.length]]).map(([start, end]) =>
      el(
        "div",
        { className: "sentence", dataset: { start, end } },
        el("p", { className: "text" }, ...spans(chars, start, end, entities)),
        relationList(chars, annotations.relations, byEntityId, start, end),
      ),
    );
  }

  function renderDoc(doc) {
    const chars = Array.from(doc.text);
    const source = doc.meta && doc.meta.source;
    const section = el(
      "article",
      { className: "doc", dataset: { id: doc.id } },
      el("h2", {}, doc.id, source && meta.mode !== "live" ? el("small", {}, " " + source) : null),
    );
    if (doc.gold) {
      section.append(
        el(
          "div",
          { className: "sides" },
          el("div", { className: "side gold" }, el("h3", {}, "Gold"), ...side(doc, doc.gold, chars)),
          el("div", { className: "side pred" }, el("h3", {}, "Prédiction"), ...side(doc, doc, chars)),
        ),
      );
    } else {
      section.append(...side(doc, doc, chars));
    }
    return section;
  }

  function modelFacts() {
    const model = meta.model || {};
    const facts = [];
    if (model.name) facts.push(`modèle ${model.name}` + (model.version ? ` (${model.version})` : ""));
    const t = meta.thresholds;
    if (t) facts.push(`seuils : relation ≥ ${t.relation_threshold}, entité ≥ ${t.min_entity_score}`);
    byId("veille-facts").textContent = facts.join(" · ");
  }

  function renderSummary() {
    const target = byId("veille-summary");
    if (!docs.length && meta.mode === "live") {
      target.replaceChildren();
      return;
    }
    const sentences = docs.reduce((n, d) => n + (d.sentences || [0]).length, 0);
    const withStatus = (items, value) => items.filter((item) => item.status === value);
    const columns = errorsMode
      ? [
          ["gold", (d, kind) => d.gold[kind]],
          ["prédits", (d, kind) => d[kind]],
          ["manqués", (d, kind) => withStatus(d.gold[kind], "missed")],
          ["en trop", (d, kind) => withStatus(d[kind], "spurious")],
        ]
      : [["nombre", (d, kind) => d[kind]]];
    const tables = [["entities", "entités", meta.schema.entities], ["relations", "relations", meta.schema.relations]].map(([kind, title, labels]) => {
      const counts = columns.map(([, items]) => {
        const count = new Map();
        for (const doc of docs) for (const item of items(doc, kind)) count.set(item.label, (count.get(item.label) || 0) + 1);
        return count;
      });
      const rows = labels.map(({ label }) => {
        const chip = el("span", { className: "chip", style: { "--c": colors.get(label) || "transparent" } }, label);
        return el("tr", { dataset: { label } }, el("td", {}, chip), ...counts.map((count) => el("td", { className: "count" }, String(count.get(label) || 0))));
      });
      const head = el("thead", {}, el("tr", {}, el("th", {}, title), ...columns.map(([name]) => el("th", {}, name))));
      return el("table", {}, head, el("tbody", { dataset: { kind } }, ...rows));
    });
    const what = errorsMode ? `${docs.length} phrases` : `${docs.length} article${docs.length > 1 ? "s" : ""}, ${sentences} phrases`;
    const legend = errorsMode
      ? el("p", { className: "legend" }, el("mark", { className: "ent missed" }, "manqué"), " dans le gold, pas dans la prédiction · ", el("mark", { className: "ent spurious" }, "en trop"), " prédit, pas dans le gold")
      : null;
    target.replaceChildren(...[el("p", { className: "counts" }, what), el("div", { className: "tables" }, ...tables), legend].filter(Boolean));
  }

  function renderFilters() {
    const rerender = () => {
      state.page = 0;
      render();
    };
    const chips = (prefix, labels) =>
      labels.map(({ label, description }) =>
        el(
          "label",
          { className: "chip", title: description || "", style: { "--c": colors.get(label) || "transparent" } },
          el("input", {
            type: "checkbox",
            checked: true,
            dataset: { filter: prefix + label },
            onchange: (event) => {
              state.hidden[event.target.checked ? "delete" : "add"](prefix + label);
              rerender();
            },
          }),
          label,
        ),
      );
    const score = el("input", {
      type: "number",
      id: "veille-min-score",
      min: 0,
      max: 1,
      step: 0.05,
      value: 0,
      oninput: (event) => {
        state.minScore = Number(event.target.value) || 0;
        rerender();
      },
    });
    const groups = [
      el("fieldset", {}, el("legend", {}, "Entités"), ...chips("e:", meta.schema.entities)),
      el("fieldset", {}, el("legend", {}, "Relations"), ...chips("r:", meta.schema.relations)),
      el("fieldset", {}, el("legend", {}, "Score"), el("label", {}, "minimum ", score)),
    ];
    if (errorsMode) {
      const only = el("input", {
        type: "checkbox",
        id: "veille-errors-only",
        checked: true,
        onchange: (event) => {
          state.errorsOnly = event.target.checked;
          rerender();
        },
      });
      groups.push(el("fieldset", {}, el("legend", {}, "Phrases"), el("label", {}, only, " seulement celles avec une erreur")));
    }
    byId("veille-filters").replaceChildren(...groups);
  }

  function renderPages(pages) {
    const go = (page) => {
      state.page = page;
      render();
      byId("veille-view").scrollIntoView();
    };
    for (const nav of document.querySelectorAll(".veille-pages")) {
      nav.replaceChildren();
      if (pages < 2) continue;
      nav.append(
        el("button", { type: "button", className: "prev", disabled: state.page === 0, onclick: () => go(state.page - 1) }, "◀ précédente"),
        el("span", { className: "page-info" }, `page ${state.page + 1} / ${pages}`),
        el("button", { type: "button", className: "next", disabled: state.page === pages - 1, onclick: () => go(state.page + 1) }, "suivante ▶"),
      );
    }
  }

  /** Only the current page of documents is in the DOM: a run of any size stays responsive. */
  function render() {
    const shown = state.errorsOnly ? docs.filter(hasError) : docs;
    const size = meta.page_size;
    const pages = Math.max(1, Math.ceil(shown.length / size));
    state.page = Math.min(state.page, pages - 1);
    renderPages(pages);
    const view = byId("veille-view");
    const page = shown.slice(state.page * size, (state.page + 1) * size).map(renderDoc);
    if (page.length) view.replaceChildren(...page);
    else view.replaceChildren(meta.mode === "live" ? "" : el("p", { className: "empty" }, "Aucun document à afficher."));
  }

  async function post(path, body) {
    const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail || response.statusText);
      throw new Error(`erreur ${response.status} : ${detail}`);
    }
    return answer;
  }

  function liveForm() {
    const form = byId("veille-form");
    const status = byId("veille-status");
    const button = byId("veille-submit");
    form.hidden = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = byId("veille-text").value;
      if (!text.trim()) {
        status.textContent = "Le texte est vide.";
        return;
      }
      button.disabled = true;
      status.textContent = "Extraction…";
      try {
        // Relative paths: the page also works when the API is served under a prefix.
        const [extract, split] = await Promise.all([post("v1/extract", { texts: [text] }), post("v1/sentences", { texts: [text] })]);
        docs = [{ ...extract.results[0], sentences: split.sentences[0] }];
        renderSummary();
        render();
        status.textContent = `${docs[0].entities.length} entités, ${docs[0].relations.length} relations`;
      } catch (error) {
        status.textContent = error.message;
      } finally {
        button.disabled = false;
      }
    });
  }

  document.title = meta.title;
  byId("veille-title").textContent = meta.title;
  modelFacts();
  renderFilters();
  renderSummary();
  render();
  if (meta.mode === "live") liveForm();
})();
