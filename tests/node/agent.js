// Real Node.js `http.Agent` driven the way `keepalive-lab agent` drives the
// lab's own agent: the same flags, the same plan (COUNT requests, one every
// EVERY ms, then LINGER ms while sockets may time out or be closed, then
// `agent.destroy()`), and one JSON line per event on stdout in the lab's
// envelope (`{"kind": "request", "request": N, "event": {"name": ...}}`).
//
// `tests/tests/real_node.rs` runs this beside the lab's agent against the
// same lab server and compares what the server recorded for each. Only
// Node's public API is used; nothing here decides anything an application
// using `http.Agent` would not.
//
//   node agent.js URL [--keep-alive] [--keep-alive-msecs N] [--max-sockets N|Infinity]
//        [--max-total-sockets N|Infinity] [--max-free-sockets N] [--scheduling lifo|fifo]
//        [--timeout MS] [--request-timeout MS] [--keep-alive-timeout-buffer MS]
//        [--every MS] [--count N] [--linger MS] [--method GET|HEAD] [--connection VALUE]
'use strict';

const http = require('node:http');

const MIN_MAJOR = 18;
const major = Number(process.versions.node.split('.')[0]);
if (!(major >= MIN_MAJOR)) {
  process.stderr.write(`node ${process.versions.node}: the comparison needs Node.js ${MIN_MAJOR} or later\n`);
  process.exit(3);
}

function fail(message) {
  process.stderr.write(`agent.js: ${message}\n`);
  process.exit(2);
}

function parse(argv) {
  const plan = { url: null, every: 1000, count: 1, linger: 0, method: 'GET', connection: null, requestTimeout: null };
  const options = {};
  const sockets = (flag, text) => {
    if (/^infinity$/i.test(text)) return Infinity;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) fail(`${flag} takes a number of sockets or Infinity, got ${text}`);
    return n;
  };
  const ms = (flag, text) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0) fail(`${flag} takes milliseconds, got ${text}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (!flag.startsWith('--')) {
      if (plan.url !== null) fail(`a second URL ${flag}`);
      plan.url = flag;
      continue;
    }
    if (flag === '--keep-alive') { options.keepAlive = true; continue; }
    if (i + 1 >= argv.length) fail(`${flag} needs a value`);
    const value = argv[++i];
    switch (flag) {
      case '--keep-alive-msecs': options.keepAliveMsecs = ms(flag, value); break;
      case '--max-sockets': options.maxSockets = sockets(flag, value); break;
      case '--max-total-sockets': options.maxTotalSockets = sockets(flag, value); break;
      case '--max-free-sockets': options.maxFreeSockets = ms(flag, value); break;
      case '--scheduling': options.scheduling = value; break;
      case '--timeout': options.timeout = ms(flag, value); break;
      // Read by Node v24.7+ / v22.20+ only; older ones keep a fixed 1000 ms.
      case '--keep-alive-timeout-buffer': options.agentKeepAliveTimeoutBuffer = ms(flag, value); break;
      case '--request-timeout': plan.requestTimeout = ms(flag, value); break;
      case '--every': plan.every = ms(flag, value); break;
      case '--count': plan.count = ms(flag, value); break;
      case '--linger': plan.linger = ms(flag, value); break;
      case '--method': plan.method = value; break;
      case '--connection': plan.connection = value; break;
      default: fail(`unknown flag ${flag}`);
    }
  }
  if (plan.url === null) fail('no URL');
  return { plan, options };
}

const { plan, options } = parse(process.argv.slice(2));
const started = process.hrtime.bigint();
function emit(line) {
  const t_ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stdout.write(JSON.stringify({ ...line, t_ms }) + '\n');
}

const agent = new http.Agent(options);
emit({ kind: 'started', node: process.versions.node, options, count: plan.count, every_ms: plan.every });

// Number sockets in the order the agent creates them, as the lab does.
const numbers = new Map();
const open = new Set();
const isFree = (socket) => Object.values(agent.freeSockets).some((list) => list.includes(socket));
const baseCreate = agent.createConnection;
agent.createConnection = function createConnection(...args) {
  const socket = baseCreate.apply(this, args);
  const id = numbers.size + 1;
  numbers.set(socket, id);
  open.add(socket);
  const tell = (event) => emit({ kind: 'socket', socket: id, event });
  tell({ name: 'socket' });
  socket.on('connect', () => tell({ name: 'connect', local: `${socket.localAddress}:${socket.localPort}` }));
  socket.on('timeout', () => tell({ name: 'timeout', free: isFree(socket) }));
  socket.on('end', () => tell({ name: 'end', free: isFree(socket) }));
  socket.on('error', (e) => tell({ name: 'error', code: e.code, message: e.message }));
  socket.on('close', (hadError) => {
    open.delete(socket);
    tell({ name: 'close', had_error: hadError });
    settle();
  });
  return socket;
};
// Added after the agent's own 'free' listener, so it sees the outcome.
agent.on('free', (socket) => {
  let outcome = 'handed_on';
  if (socket.destroyed) outcome = 'destroyed';
  else if (isFree(socket)) outcome = 'pooled';
  emit({ kind: 'socket', socket: numbers.get(socket), event: { name: 'free', outcome } });
});

let handed = 0;
let ended = 0;
let completed = 0;
let failed = 0;

function send(n) {
  handed++;
  const headers = plan.connection === null ? {} : { Connection: plan.connection };
  const req = http.request(plan.url, { agent, method: plan.method, headers });
  const tell = (event) => emit({ kind: 'request', request: n, event });
  let over = false;
  const end = (ok, event) => {
    tell(event);
    if (over) return;
    over = true;
    ended++;
    if (ok) completed++;
    else failed++;
    settle();
  };
  tell({ name: 'queued' });
  req.on('socket', (socket) => {
    const sent = () => tell({ name: 'sent', socket: numbers.get(socket), reused: req.reusedSocket });
    if (socket.connecting) socket.once('connect', sent);
    else sent();
  });
  req.on('timeout', () => tell({ name: 'timeout', socket: numbers.get(req.socket) }));
  if (plan.requestTimeout !== null) {
    // axios' `timeout`: the request's own idle timeout aborts it.
    req.setTimeout(plan.requestTimeout, () => {
      end(false, { name: 'aborted', reason: 'request_timeout' });
      req.destroy();
    });
  }
  req.on('response', (res) => {
    tell({ name: 'response', socket: numbers.get(req.socket), status: res.statusCode, connection: res.headers.connection ?? null, keep_alive: res.headers['keep-alive'] ?? null });
    let bytes = 0;
    res.on('data', (chunk) => { bytes += chunk.length; });
    res.on('end', () => end(true, { name: 'done', status: res.statusCode, body_bytes: bytes }));
    res.on('error', (e) => end(false, { name: 'error', code: e.code, message: e.message, reused_socket: req.reusedSocket }));
  });
  req.on('error', (e) => end(false, { name: 'error', code: e.code, message: e.message, reused_socket: req.reusedSocket }));
  req.end();
}

// After the last request ends: linger until LINGER ms pass or no socket is
// left open, whichever is first; then destroy the agent.
let lingering = null;
let finished = false;
function settle() {
  if (finished || handed < plan.count || ended < plan.count) return;
  if (lingering === null) lingering = setTimeout(finish, plan.linger);
  if (open.size === 0) finish();
}
function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(lingering);
  emit({ kind: 'destroy' });
  agent.destroy();
  setImmediate(() => emit({ kind: 'finished', requests: handed, completed, failed, sockets: numbers.size }));
}

for (let n = 1; n <= plan.count; n++) setTimeout(() => send(n), plan.every * (n - 1));
