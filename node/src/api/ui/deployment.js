// A deployment live: one cell per target, grouped by wave and coloured by its status,
// moved by the event stream (TargetStatusChanged, LifecycleEventChanged, WaveStarted)
// with no polling; its traffic (blue/green split, Lambda alias and ECS task set weights,
// its routes); the Stop / Stop and roll back / Continue buttons.

import { call, deploymentEvents } from '/ui/api.js';
import { badge, debounce, duration, errorBox, facts, fill, h, link, shortRevision, when } from '/ui/dom.js';
import { routeCard } from '/ui/views.js';

/** Event rows a deployment or target view keeps (newest first). */
const EVENT_ROWS_MAX = 300;

/** Lifecycle statuses that do not say where a target is. */
const QUIET = new Set(['Pending', 'Skipped']);

/** The deployment statuses after which nothing more happens. */
const TERMINAL = new Set(['Succeeded', 'Failed', 'Stopped']);

/** The event log of a view: a table body that keeps the newest rows on top. */
export function eventLog(showTarget) {
  const rows = h('tbody');
  const columns = ['Time', 'Change', showTarget ? 'Target' : null, 'Lifecycle event', 'Status / message'].filter(
    Boolean,
  );
  const el = h(
    'div',
    { class: 'scroll' },
    h(
      'table',
      { class: 'events' },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          columns.map((c) => h('th', null, c)),
        ),
      ),
      rows,
    ),
  );
  const seen = new Set();
  const add = (event) => {
    // History and the live stream overlap: each event once, newest on top.
    if (seen.has(event.id)) return;
    seen.add(event.id);
    const target = /^\d+$/.test(event.targetId || '') ? `node-${event.targetId}` : event.targetId || '';
    const row = h(
      'tr',
      { dataset: { event: event.id } },
      h('td', null, when(event.time)),
      h('td', null, event.type),
      showTarget ? h('td', null, target) : null,
      h('td', null, event.lifecycleEventName || ''),
      h('td', null, event.status ? badge(event.status) : null, event.message ? ` ${event.message}` : null),
    );
    const older = [...rows.children].find((other) => Number(other.dataset.event) < event.id);
    if (older) older.before(row);
    else rows.append(row);
    while (rows.children.length > EVENT_ROWS_MAX) rows.lastElementChild.remove();
  };
  return { el, add };
}

/** One target's cell: its status as colour, its id, the lifecycle event it is at. */
function targetCell(deploymentId, target) {
  const current = target.currentEvent;
  const label = h('small', { class: 'current' }, current ? current.name : 'waiting');
  const cell = h(
    'a',
    {
      class: 'cell',
      href: `#/deployments/${deploymentId}/targets/${encodeURIComponent(target.targetId)}`,
      title: `${target.targetId}: ${target.status}`,
      dataset: { target: target.targetId, status: target.status, wave: target.wave },
    },
    h('strong', null, /^\d+$/.test(target.targetId) ? `node-${target.targetId}` : target.targetId),
    label,
    target.label ? h('span', { class: 'tag' }, target.label) : null,
  );
  cell.setStatus = (status) => {
    cell.dataset.status = status;
    cell.title = `${target.targetId}: ${status}`;
  };
  cell.setEvent = (name, status) => {
    label.textContent = name;
    label.dataset.status = status;
  };
  return cell;
}

/** The waves: a row of cells per wave, targets not started yet last. */
function waveBoard(info) {
  const el = h('div', { class: 'waves', id: 'waves' });
  const cells = new Map();
  const waves = new Map();
  const waveRow = (number) => {
    if (!waves.has(number)) {
      const cellsEl = h('div', { class: 'cells' });
      const title = number === 0 ? 'Not started' : `Wave ${number}`;
      const row = h('div', { class: 'wave', dataset: { wave: number } }, h('h3', null, title), cellsEl);
      waves.set(number, cellsEl);
      const later = [...el.children].find(
        (other) => Number(other.dataset.wave) === 0 || Number(other.dataset.wave) > number,
      );
      if (number !== 0 && later) later.before(row);
      else el.append(row);
    }
    return waves.get(number);
  };
  for (const target of info.targetWaves || []) {
    const cell = targetCell(info.deploymentId, target);
    cells.set(target.targetId, cell);
    waveRow(target.wave).append(cell);
  }
  let currentWave = info.waves || 0;
  const dropEmpty = () => {
    for (const [number, cellsEl] of waves) {
      if (cellsEl.children.length === 0) {
        cellsEl.parentElement.remove();
        waves.delete(number);
      }
    }
  };
  /** Applies one event of this deployment to the cells; false for a target it has no cell for. */
  const apply = (event) => {
    if (event.type === 'WaveStarted') {
      const number = Number((/wave (\d+)/.exec(event.message || '') || [])[1]);
      if (Number.isFinite(number)) currentWave = Math.max(currentWave, number);
      return true;
    }
    const cell = cells.get(event.targetId);
    if (!cell) return event.targetId === undefined;
    if (event.type === 'TargetStatusChanged') {
      cell.setStatus(event.status);
      if (Number(cell.dataset.wave) === 0 && event.status !== 'Pending' && currentWave > 0) {
        cell.dataset.wave = currentWave;
        waveRow(currentWave).append(cell);
        dropEmpty();
      }
    } else if (event.type === 'LifecycleEventChanged' && !QUIET.has(event.status)) {
      cell.setEvent(event.lifecycleEventName, event.status);
    }
    return true;
  };
  const counts = () => {
    const count = {};
    for (const cell of cells.values()) count[cell.dataset.status] = (count[cell.dataset.status] || 0) + 1;
    return count;
  };
  return { el, apply, counts, wavesStarted: () => currentWave };
}

/** The buttons that change a deployment, each behind a confirm. */
function actions(info, onDone) {
  const error = errorBox();
  const notice = h('p', { class: 'notice', hidden: true });
  const act = async (question, operation, input) => {
    if (!window.confirm(question)) return;
    error.show(null);
    try {
      const answer = await call(operation, input);
      notice.textContent = answer.statusMessage || `${operation} accepted`;
      notice.hidden = false;
      onDone();
    } catch (failure) {
      error.show(`${operation} refused: ${failure.message}`);
    }
  };
  const id = info.deploymentId;
  const running = !TERMINAL.has(info.status);
  const phase = info.blueGreenPhase;
  const waiting = info.status === 'Ready' || phase === 'Ready' || phase === 'TerminationWait';
  const waitType = phase === 'TerminationWait' ? 'TERMINATION_WAIT' : 'READY_WAIT';
  const button = (action, text, onclick, enabled, className) =>
    h('button', { type: 'button', class: className, dataset: { action }, disabled: !enabled, onclick }, text);
  return h(
    'div',
    { class: 'actions' },
    button(
      'stop',
      'Stop',
      () =>
        act(`Stop ${id}? Targets finish the lifecycle event they are in.`, 'StopDeployment', {
          deploymentId: id,
          autoRollbackEnabled: false,
        }),
      running,
      'danger',
    ),
    button(
      'stop-rollback',
      'Stop and roll back',
      () =>
        act(`Stop ${id} and roll its targets back to the last good revision?`, 'StopDeployment', {
          deploymentId: id,
          autoRollbackEnabled: true,
        }),
      running,
      'danger',
    ),
    waiting
      ? button(
          'continue',
          'Continue',
          () =>
            act(
              `Continue ${id} past its ${waitType === 'READY_WAIT' ? 'ready' : 'termination'} wait?`,
              'ContinueDeployment',
              { deploymentId: id, deploymentWaitType: waitType },
            ),
          running,
        )
      : null,
    notice,
    error,
  );
}

/** What a deployment's traffic looks like: blue/green share, alias or task set weights, routes. */
async function trafficSection(info) {
  const parts = [];
  if (info.blueGreenPhase) parts.push(facts([['Blue/green phase', info.blueGreenPhase]]));
  if (typeof info.greenTrafficPercent === 'number') {
    parts.push(weightRow('Green', info.greenTrafficPercent), weightRow('Blue', 100 - info.greenTrafficPercent));
  }
  const single = info.computePlatform && info.computePlatform !== 'Server' ? (info.targetWaves || [])[0] : null;
  if (single) {
    const answer = await call('GetDeploymentTarget', { deploymentId: info.deploymentId, targetId: single.targetId });
    const target = answer.deploymentTarget || {};
    const lambda = target.lambdaTarget && target.lambdaTarget.lambdaFunctionInfo;
    if (lambda) {
      const weight = 100 * (lambda.targetVersionWeight || 0);
      parts.push(facts([['Alias', `${lambda.functionName}:${lambda.functionAlias}`]]));
      parts.push(
        weightRow(`version ${lambda.targetVersion}`, weight),
        weightRow(`version ${lambda.currentVersion}`, 100 - weight),
      );
    }
    for (const taskSet of (target.ecsTarget && target.ecsTarget.taskSetsInfo) || []) {
      parts.push(weightRow(`${taskSet.taskSetLabel} task set`, taskSet.trafficWeight));
    }
  }
  const names = ((info.loadBalancerInfo || {}).targetGroupInfoList || []).map((group) => group.name);
  const routes = await Promise.all(names.map((routeName) => call('GetRoute', { routeName }).catch(() => null)));
  parts.push(...routes.filter(Boolean).map(routeCard));
  return parts.length ? [h('h2', null, 'Traffic'), ...parts] : [];
}

function weightRow(name, percent) {
  return h(
    'div',
    { class: 'weight' },
    h('span', null, name),
    h('progress', { max: 100, value: percent }),
    h('span', null, `${Number(percent).toFixed(1)} %`),
  );
}

/** A deployment, live. */
export function deploymentView(deploymentId) {
  const title = h('h1', null, 'Deployment ', h('code', null, deploymentId), ' ');
  const error = errorBox();
  const header = h('div');
  const boardHolder = h('section', null, h('h2', null, 'Targets by wave'));
  const traffic = h('section', { class: 'traffic-part' });
  const log = eventLog(true);
  const el = h(
    'section',
    { class: 'view deployment' },
    title,
    error,
    header,
    boardHolder,
    traffic,
    h('section', null, h('h2', null, 'Events'), log.el),
  );
  let board = null;
  let info = null;
  // Events that arrive while the deployment is (re)read are applied to what it answers.
  let loading = false;
  let buffered = [];
  let status = badge('…');
  title.append(status);
  const progress = h('span', { id: 'progress' });
  const running = h('span');
  const renderProgress = () => {
    running.textContent = info.startTime ? duration(info.startTime, info.completeTime) : '';
    const counts = board.counts();
    const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
    const failed = counts.Failed ? `, ${counts.Failed} failed` : '';
    progress.textContent = `${counts.Succeeded || 0} of ${total} succeeded${failed}, ${board.wavesStarted()} waves started`;
  };
  const renderHeader = () => {
    renderProgress();
    const failure = info.errorInformation;
    const rollback = info.rollbackInfo;
    fill(
      header,
      facts([
        ['Application', link('#/applications', info.applicationName)],
        ['Group', info.deploymentGroupName],
        ['Configuration', info.deploymentConfigName],
        [
          'Revision',
          link(`#/revisions/${info.revisionId}`, shortRevision(info.revisionId), { title: 'where its bytes are' }),
        ],
        ['Style', `${(info.deploymentStyle || {}).deploymentType || 'IN_PLACE'}, ${info.computePlatform || 'Server'}`],
        ['Created', `${when(info.createTime)}${info.createdBy ? ` by ${info.createdBy}` : ''}`],
        ['Running for', info.startTime ? running : null],
        ['Targets', progress],
        ['Stopped by', info.stoppedBy],
        [
          'Rollback',
          rollback
            ? [
                rollback.rollbackDeploymentId
                  ? link(`#/deployments/${rollback.rollbackDeploymentId}`, rollback.rollbackDeploymentId)
                  : null,
                ' ',
                rollback.rollbackMessage || '',
              ]
            : null,
        ],
      ]),
      failure ? h('p', { class: 'error' }, `${failure.code}: ${failure.message}`) : null,
      actions(info, () => reload()),
    );
  };
  const setStatus = (value) => {
    const next = badge(value);
    next.id = 'deployment-status';
    status.replaceWith(next);
    status = next;
  };
  const load = async () => {
    loading = true;
    try {
      info = (await call('GetDeployment', { deploymentId })).deploymentInfo;
      board = waveBoard(info);
      fill(boardHolder, h('h2', null, 'Targets by wave'), board.el, legend());
      setStatus(info.status);
      const missed = buffered;
      buffered = [];
      loading = false;
      missed.forEach((event) => apply(event, true));
      renderHeader();
      error.show(null);
      fill(traffic, await trafficSection(info));
    } catch (failure) {
      error.show(failure);
    } finally {
      loading = false;
    }
  };
  // The summary (status, error, rollback, traffic) is re-read when the log says it changed.
  const reload = debounce(load, 250);
  const onEvent = (event) => {
    if (event.deploymentId !== deploymentId) return;
    log.add(event);
    if (loading || !info) buffered.push(event);
    else apply(event);
  };
  /** Applies `event`; a replayed one (buffered during a read) asks for no other read. */
  const apply = (event, replayed) => {
    const known = board.apply(event);
    if (event.type === 'DeploymentStatusChanged') setStatus(event.status);
    renderProgress();
    const summary = ['DeploymentStatusChanged', 'TrafficShifted', 'RollbackLinked'].includes(event.type);
    // A target the first read did not have gets its cell from a new read.
    if (!replayed && (summary || !known)) reload();
  };
  load().then(async () => {
    for (const event of await deploymentEvents(deploymentId).catch(() => [])) log.add(event);
  });
  return { el, onEvent, refresh: load, dispose: () => reload.cancel() };
}

function legend() {
  const statuses = ['Pending', 'InProgress', 'Succeeded', 'Failed', 'Skipped', 'Ready', 'Unknown'];
  return h(
    'p',
    { class: 'legend' },
    statuses.map((status) => badge(status)),
  );
}
