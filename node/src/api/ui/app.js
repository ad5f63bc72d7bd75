// The dashboard's shell: sign-in (the token kept in sessionStorage), the views by URL
// hash, and the one event stream of the tab, handed to whichever view is shown.
//
//   #/cluster  #/applications  #/deployments[/<id>[/targets/<target>]]  #/revisions/<id>  #/traffic

import { clearToken, getCluster, lastEventId, onUnauthorized, setToken, token } from '/ui/api.js';
import { deploymentView } from '/ui/deployment.js';
import { fill } from '/ui/dom.js';
import { EventStream } from '/ui/events.js';
import { targetView } from '/ui/target.js';
import { applicationsView, clusterView, deploymentsView, revisionView, trafficView } from '/ui/views.js';

/** Hash patterns, the view each shows and the menu entry it belongs to. */
const ROUTES = [
  [/^#\/cluster$/, () => clusterView(), 'cluster'],
  [/^#\/applications$/, () => applicationsView(), 'applications'],
  [/^#\/deployments$/, () => deploymentsView(), 'deployments'],
  [/^#\/deployments\/([^/]+)$/, (id) => deploymentView(id), 'deployments'],
  [
    /^#\/deployments\/([^/]+)\/targets\/([^/]+)$/,
    (id, target) => targetView(id, decodeURIComponent(target)),
    'deployments',
  ],
  [/^#\/revisions\/([0-9a-fA-F]{64})$/, (id) => revisionView(id), 'applications'],
  [/^#\/traffic$/, () => trafficView(), 'traffic'],
];

/** The longest wait between two attempts to find where the event log stands. */
const STREAM_RETRY_MAX_MS = 10000;

const $ = (selector) => document.querySelector(selector);

let current = null;
let stream = null;
let streamAttempt = 0;

/** Shows the view the URL's hash names (the cluster when it names none). */
function show() {
  if (current && current.dispose) current.dispose();
  current = null;
  const hash = location.hash || '#/cluster';
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) {
    location.hash = '#/cluster';
    return;
  }
  const [pattern, make, section] = route;
  current = make(...pattern.exec(hash).slice(1));
  fill($('#view'), current.el);
  for (const entry of document.querySelectorAll('#nav a')) {
    const active = entry.dataset.view === section;
    entry.classList.toggle('active', active);
    if (active) entry.setAttribute('aria-current', 'page');
    else entry.removeAttribute('aria-current');
  }
}

/** Starts following the event log from its newest event. */
async function startStream() {
  if (stream) stream.stop();
  stream = null;
  const attempt = ++streamAttempt;
  for (let wait = 500; attempt === streamAttempt && token(); wait = Math.min(wait * 2, STREAM_RETRY_MAX_MS)) {
    try {
      const since = await lastEventId();
      if (attempt !== streamAttempt) return;
      stream = new EventStream(since, {
        onEvent: (event) => current && current.onEvent && current.onEvent(event),
        onState: setLive,
        onGap: () => current && current.refresh && current.refresh(),
        onUnauthorized: (message) => signOut(`The node refused the token: ${message}`),
      }).start();
      return;
    } catch (error) {
      setLive('offline', error.message);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/** Shows the stream's state in the header. */
function setLive(state, detail) {
  const live = $('#live');
  live.dataset.state = state;
  live.textContent = { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…' }[state] || 'offline';
  live.title = detail ? `event stream: ${detail}` : 'event stream';
}

/** Shows the dashboard once a token is kept. */
function enter() {
  $('#login').hidden = true;
  $('#login-error').hidden = true;
  $('#sign-out').hidden = false;
  $('#nav').hidden = false;
  show();
  startStream();
}

/** Forgets the token and asks for one, saying why when `reason` is given. */
function signOut(reason) {
  clearToken();
  streamAttempt += 1;
  if (stream) stream.stop();
  stream = null;
  if (current && current.dispose) current.dispose();
  current = null;
  fill($('#view'));
  setLive('offline');
  $('#sign-out').hidden = true;
  $('#nav').hidden = true;
  $('#login').hidden = false;
  const error = $('#login-error');
  error.textContent = reason || '';
  error.hidden = !reason;
  $('#token').focus();
}

/** Keeps the token entered if the node takes it. */
async function signIn(event) {
  event.preventDefault();
  const entered = $('#token').value.trim();
  if (!entered) return;
  setToken(entered);
  try {
    await getCluster();
  } catch (error) {
    // Only a refused token keeps the form; a node without a leader still takes it.
    if (error.status === 401 || error.status === 403) {
      signOut(`The node refused the token: ${error.message}`);
      return;
    }
  }
  $('#token').value = '';
  enter();
}

function banner(message) {
  const box = $('#error');
  box.textContent = message;
  box.hidden = !message;
}

onUnauthorized((message) => signOut(`The node refused the token: ${message}`));
window.addEventListener('unhandledrejection', (event) =>
  banner(String((event.reason && event.reason.message) || event.reason)),
);
window.addEventListener('hashchange', () => token() && show());
$('#login').addEventListener('submit', signIn);
$('#sign-out').addEventListener('click', () => signOut());
$('#error').addEventListener('click', () => banner(''));
if (token()) enter();
else signOut();
