// The Strategos web console: a client of the task API (/v1), nothing more.
// Every text that comes from the API (goals, code, events, errors) is set with textContent,
// never parsed as HTML. The tenant's key stays in this tab's sessionStorage.
"use strict";

const KEY_ITEM = "strategos.apiKey";
const REFRESH_KINDS = new Set([
  "WorkflowPaused", "WorkflowCompleted", "WorkflowFailed", "ApprovalGiven", "ApprovalRejected",
]);
const FINISHED = new Set(["completed", "failed"]);

let stream = null; // the open WebSocket of the task page, if any
let shownTask = null; // the task id the task page shows

// ------------------------------------------------------------------ helpers

function $(selector, root = document) {
  return root.querySelector(selector);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Call the task API; throws ApiError carrying the API's one-line message. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", "the task API cannot be reached");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || "http_error",
      error.message || `the task API answered ${response.status}`);
  }
  return data;
}

function showError(node, err) {
  if (!node) return;
  node.textContent = err ? err.message || String(err) : "";
  node.hidden = !err;
}

function badge(node, status) {
  node.textContent = status.replaceAll("_", " ");
  node.className = `badge status-${status}`;
}

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

function codeBlock(path, content) {
  const figure = el("figure", "code");
  figure.append(el("figcaption", "mono", path));
  const pre = el("pre");
  pre.append(el("code", null, content));
  figure.append(pre);
  return figure;
}

function fillList(list, items, empty) {
  list.replaceChildren(...items.map((item) => el("li", null, item)));
  if (!items.length && empty) list.append(el("li", "muted", empty));
}

// ------------------------------------------------------------------ the key

function showKeyState() {
  $("#key-state").textContent = apiKey() ? "key set for this tab" : "no key";
}

function setUpKeyForm() {
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#api-key").value.trim();
    if (value) sessionStorage.setItem(KEY_ITEM, value);
    $("#api-key").value = "";
    showKeyState();
    render();
  });
  $("#forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_ITEM);
    showKeyState();
    render();
  });
  showKeyState();
}

// ------------------------------------------------------------------ the task list

async function loadTasks() {
  const body = $("#task-table tbody");
  try {
    const page = await api("GET", "/v1/tasks?limit=50");
    body.replaceChildren(...page.tasks.map(taskRow));
    $("#tasks-empty").hidden = page.tasks.length > 0;
    showError($("#tasks-error"), null);
  } catch (err) {
    body.replaceChildren();
    showError($("#tasks-error"), err);
  }
}

function taskRow(task) {
  const row = el("tr");
  const status = el("span");
  badge(status, task.status);
  const cell = el("td");
  cell.append(status);
  const goal = el("td", "goal");
  const link = el("a", null, task.goal.split("\n")[0]);
  link.href = `#/tasks/${encodeURIComponent(task.task_id)}`;
  goal.append(link);
  row.append(cell, goal, el("td", "muted nowrap", when(task.created_at)));
  return row;
}

function setUpTaskForm() {
  const form = $("#new-task");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("#new-task-error");
    const goal = $("#goal").value;
    const approve = $("#approve-mode").value;
    try {
      const task = await api("POST", "/v1/tasks", { goal, options: { approve } });
      showError(error, null);
      $("#goal").value = "";
      location.hash = `#/tasks/${encodeURIComponent(task.task_id)}`;
    } catch (err) {
      showError(error, err);
    }
  });
  $("#refresh-tasks").addEventListener("click", loadTasks);
}

// ------------------------------------------------------------------ one task

async function loadTask(taskId) {
  try {
    const task = await api("GET", `/v1/tasks/${encodeURIComponent(taskId)}`);
    if (shownTask !== taskId) return;
    showError($("#task-error"), null);
    showTask(task);
    if (FINISHED.has(task.status)) await loadFiles(taskId);
  } catch (err) {
    showError($("#task-error"), err);
  }
}

function showTask(task) {
  $("#task-goal").textContent = task.goal;
  badge($("#task-status"), task.status);
  $("#task-id").textContent = `task ${task.task_id}`;
  $("#task-step").textContent = task.current_step ? `· next step: ${task.current_step}` : "";
  showApproval(task.status === "waiting_for_approval" ? task.pending_approval : null);
}

function showApproval(request) {
  const box = $("#approval");
  box.hidden = !request;
  if (!request) return;
  $("#approval-summary").textContent = request.summary || "";
  $("#approval-destination").textContent = request.destination || "";
  $("#approval-tests").textContent = request.tests || "";
  fillList($("#approval-flags"), (request.flags || []).map(String), "none");
  fillList($("#approval-failing"), (request.failing || []).map(String), "none: every check passes");
  const contents = request.contents || {};
  $("#approval-code").replaceChildren(
    ...Object.keys(contents).sort().map((path) => codeBlock(path, contents[path])),
  );
}

async function answer(approved) {
  const error = $("#approval-error");
  const buttons = [$("#approve-button"), $("#reject-button")];
  buttons.forEach((button) => { button.disabled = true; });
  try {
    const comment = $("#approval-comment").value;
    const task = await api("POST", `/v1/tasks/${encodeURIComponent(shownTask)}/approve`,
      { approved, comment });
    showError(error, null);
    $("#approval-comment").value = "";
    showTask(task);
  } catch (err) {
    showError(error, err);
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
}

async function loadFiles(taskId) {
  try {
    const delivered = await api("GET", `/v1/tasks/${encodeURIComponent(taskId)}/files`);
    if (shownTask !== taskId) return;
    $("#files-destination").textContent = delivered.delivered
      ? `Delivered to ${delivered.destination}`
      : "Nothing delivered.";
    $("#files-list").replaceChildren(
      ...delivered.files.map((file) => codeBlock(file.path, file.content)),
    );
    $("#current-code").replaceChildren(
      ...delivered.current.map((file) => codeBlock(file.path, file.content)),
    );
  } catch (err) {
    showError($("#files-destination"), err);
  }
}

function showChecks(data) {
  const [specPassed, specTotal] = data.spec || [0, 0];
  const [teamPassed, teamTotal] = data.model || [0, 0];
  let text = `goal examples ${specPassed}/${specTotal} · team tests ${teamPassed}/${teamTotal}`;
  if (data.error) text += ` · ${data.error}`;
  const summary = $("#checks-summary");
  summary.textContent = text;
  summary.className = "";
  fillList($("#checks-failing"), (data.failing || []).map(String), "every check passes");
}

// ------------------------------------------------------------------ events

/** One line of text that says what an event means (the model's words stay text). */
function describeEvent(event) {
  const data = event.data || {};
  switch (event.kind) {
    case "WorkflowStarted": return "task started";
    case "WorkflowPaused": return "waiting for a human to approve the delivery";
    case "WorkflowCompleted": return `finished: ${(data.report || {}).status || "done"}`;
    case "WorkflowFailed": return `failed: ${data.error || data.reason || "see the dead letters"}`;
    case "ApprovalRequested": return `approval requested for ${data.tool}`;
    case "ApprovalGiven":
    case "ApprovalRejected": {
      const verdict = event.kind === "ApprovalGiven" ? "approved" : "rejected";
      return `${verdict} by ${data.approver || "a human"}${data.comment ? `: ${data.comment}` : ""}`;
    }
    case "ActivityScheduled": return `${data.tool} started`;
    case "ActivityCompleted": return `${data.tool} done (${Math.round(data.duration_ms || 0)} ms)`;
    case "ActivityFailed": return `${data.tool} failed: ${data.error || ""}`;
    case "AgentProgress": return describeProgress(data);
    default: return JSON.stringify(data).slice(0, 300);
  }
}

function describeProgress(data) {
  const parts = [String(data.event)];
  if (data.next) parts.push(`→ ${data.next}`);
  if (data.files) parts.push(data.files.join(", "));
  if (data.spec) parts.push(`examples ${data.spec.join("/")}, team ${(data.model || []).join("/")}`);
  if (data.failing && data.failing.length) parts.push(`failing: ${data.failing.join("; ")}`);
  if (data.issues && data.issues.length) parts.push(data.issues.join("; "));
  if (data.comment) parts.push(data.comment);
  if (data.error) parts.push(data.error);
  return parts.join(" · ");
}

function addEvent(event) {
  const item = el("li", `event type-${event.type}`);
  item.dataset.id = String(event.id);
  const progress = event.kind === "AgentProgress";
  const label = progress ? event.data.role || "team" : event.kind;
  item.append(el("span", "kind", label), el("span", "text", describeEvent(event)));
  $("#events").append(item);
  item.scrollIntoView({ block: "nearest" });
  if (event.kind === "AgentProgress" && event.data.role === "tester" && event.data.spec) {
    showChecks(event.data);
    loadFiles(shownTask); // the code these checks ran on
  }
  if (REFRESH_KINDS.has(event.kind)) loadTask(shownTask);
}

function lastEventId() {
  const last = $("#events").lastElementChild;
  return last ? Number(last.dataset.id) : 0;
}

/** Follow the task's stream; browsers cannot set headers, so the key is the first message. */
function follow(taskId) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(
    `${scheme}://${location.host}/v1/tasks/${encodeURIComponent(taskId)}/stream`);
  stream = socket;
  const state = $("#stream-state");
  state.textContent = "connecting…";
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({ api_key: apiKey() || null, last_event_id: lastEventId() }));
    state.textContent = "live";
  });
  socket.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "event") addEvent(data.event);
    else if (data.type === "end") {
      state.textContent = `ended: ${data.status}`;
      loadTask(taskId);
    } else if (data.type === "error") {
      showError($("#task-error"), data.error);
    }
  });
  socket.addEventListener("close", (close) => {
    if (stream !== socket) return;
    stream = null;
    // 1013 and abnormal closes are "try again": resume after the last event shown.
    if (close.code === 1013 || close.code === 1006) {
      state.textContent = "reconnecting…";
      setTimeout(() => { if (shownTask === taskId && !stream) follow(taskId); }, 2000);
    } else if (!state.textContent.startsWith("ended")) {
      state.textContent = "closed";
    }
  });
}

function stopFollowing() {
  if (stream) {
    const socket = stream;
    stream = null;
    socket.close();
  }
}

function openTask(taskId) {
  shownTask = taskId;
  $("#events").replaceChildren();
  $("#approval").hidden = true;
  $("#task-goal").textContent = "";
  $("#task-status").textContent = "";
  $("#checks-summary").textContent = "No test run yet.";
  $("#checks-summary").className = "muted";
  $("#checks-failing").replaceChildren();
  $("#files-destination").textContent = "Nothing delivered yet.";
  $("#files-destination").className = "muted";
  $("#files-list").replaceChildren();
  $("#current-code").replaceChildren();
  showError($("#approval-error"), null);
  loadTask(taskId);
  follow(taskId);
}

// ------------------------------------------------------------------ dead letters

async function loadDeadLetters() {
  const body = $("#dlq-table tbody");
  try {
    const page = await api("GET", "/v1/dead-letters?limit=50");
    body.replaceChildren(...page.dead_letters.map(letterRow));
    $("#dlq-empty").hidden = page.dead_letters.length > 0;
    showError($("#dlq-error"), null);
  } catch (err) {
    body.replaceChildren();
    showError($("#dlq-error"), err);
  }
}

function letterRow(letter) {
  const row = el("tr");
  row.dataset.id = letter.id;
  const status = el("span");
  badge(status, letter.status);
  const statusCell = el("td");
  statusCell.append(status);
  const task = el("td", "mono");
  const link = el("a", null, letter.task_id.slice(0, 8));
  link.href = `#/tasks/${encodeURIComponent(letter.task_id)}`;
  task.append(link);
  const actions = el("td");
  if (letter.status === "open") {
    const replay = el("button", "secondary", "Replay");
    replay.type = "button";
    replay.addEventListener("click", () => replayLetter(letter.id, replay));
    actions.append(replay);
  }
  const error = el("td");
  const text = el("div", "error-text clamp", letter.error);
  text.title = letter.error;
  error.append(text);
  row.append(statusCell, task, error, el("td", null, letter.attempts),
    el("td", "muted nowrap", when(letter.created_at)), actions);
  return row;
}

async function replayLetter(letterId, button) {
  button.disabled = true;
  try {
    await api("POST", `/v1/dead-letters/${encodeURIComponent(letterId)}/replay`);
    await loadDeadLetters();
  } catch (err) {
    button.disabled = false;
    showError($("#dlq-error"), err);
  }
}

// ------------------------------------------------------------------ routing

function render() {
  stopFollowing();
  shownTask = null;
  const hash = location.hash || "#/";
  const task = hash.match(/^#\/tasks\/([0-9a-fA-F-]{36})$/);
  const views = { tasks: $("#tasks-view"), task: $("#task-view"), dlq: $("#dlq-view") };
  const current = task ? "task" : hash === "#/dead-letters" ? "dlq" : "tasks";
  for (const [name, view] of Object.entries(views)) view.hidden = name !== current;
  $("#nav-tasks").classList.toggle("active", current !== "dlq");
  $("#nav-dlq").classList.toggle("active", current === "dlq");
  if (current === "task") openTask(task[1].toLowerCase());
  else if (current === "dlq") loadDeadLetters();
  else loadTasks();
}

document.addEventListener("DOMContentLoaded", () => {
  setUpKeyForm();
  setUpTaskForm();
  $("#approve-button").addEventListener("click", () => answer(true));
  $("#reject-button").addEventListener("click", () => answer(false));
  $("#refresh-dlq").addEventListener("click", loadDeadLetters);
  window.addEventListener("hashchange", render);
  render();
});
