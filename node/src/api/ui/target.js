// One target of a deployment: its lifecycle events with diagnostics and log tail, read
// again whenever the event stream reports a change of it, and its events as they come.

import { call, deploymentEvents } from '/ui/api.js';
import { eventLog } from '/ui/deployment.js';
import { badge, debounce, duration, errorBox, facts, fill, h, link, when } from '/ui/dom.js';

/** One target of a deployment: lifecycle events with diagnostics and log tail. */
export function targetView(deploymentId, targetId) {
  const error = errorBox();
  const body = h('div');
  const log = eventLog(false);
  const back = link(`#/deployments/${deploymentId}`, `← ${deploymentId}`);
  const el = h(
    'section',
    { class: 'view target' },
    h('p', null, back),
    h('h1', null, 'Target ', h('code', null, /^\d+$/.test(targetId) ? `node-${targetId}` : targetId)),
    error,
    body,
    h('h2', null, 'Events'),
    log.el,
  );
  const load = async () => {
    try {
      const answer = await call('GetDeploymentTarget', { deploymentId, targetId });
      const target = answer.deploymentTarget || {};
      const record = target.instanceTarget || target.lambdaTarget || target.ecsTarget || {};
      fill(
        body,
        facts([
          ['Status', h('span', { id: 'target-status' }, badge(record.status))],
          ['Kind', target.deploymentTargetType],
          ['Wave', record.wave],
          ['Label', record.instanceLabel],
          ['Last change', when(record.lastUpdatedAt)],
        ]),
        h('h2', null, 'Lifecycle events'),
        (record.lifecycleEvents || []).map(lifecycleCard),
      );
      error.show(null);
    } catch (failure) {
      error.show(failure);
    }
  };
  const reload = debounce(load, 250);
  const onEvent = (event) => {
    if (event.deploymentId !== deploymentId || event.targetId !== targetId) return;
    log.add(event);
    reload();
  };
  load();
  deploymentEvents(deploymentId)
    .then((events) => events.filter((event) => event.targetId === targetId).forEach(log.add))
    .catch(error.show);
  return { el, onEvent, refresh: load, dispose: () => reload.cancel() };
}

function lifecycleCard(event) {
  const diagnostics = event.diagnostics;
  const failed = diagnostics && diagnostics.errorCode && diagnostics.errorCode !== 'Success';
  return h(
    'details',
    {
      class: 'lifecycle',
      open: failed || event.status === 'InProgress',
      dataset: { event: event.lifecycleEventName, status: event.status },
    },
    h(
      'summary',
      null,
      badge(event.status),
      ' ',
      h('strong', null, event.lifecycleEventName),
      ' ',
      h('small', null, event.startTime ? duration(event.startTime, event.endTime) : ''),
    ),
    facts([
      ['Started', when(event.startTime)],
      ['Ended', when(event.endTime)],
      ['Result', diagnostics ? diagnostics.errorCode : null],
      ['Script', diagnostics ? diagnostics.scriptName : null],
      ['Message', diagnostics ? diagnostics.message : null],
      ['Hook execution', event.lifecycleEventHookExecutionId],
    ]),
    diagnostics && diagnostics.logTail
      ? [h('h4', null, 'Log tail'), h('pre', { class: 'log' }, diagnostics.logTail)]
      : null,
  );
}
