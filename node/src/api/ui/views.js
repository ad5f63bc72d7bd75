// The dashboard's list views: cluster, applications and groups, deployments, a
// revision's spread over the nodes, and traffic routes. Each view is
// `{ el, onEvent?(event), refresh?(), dispose?() }`: it loads by API calls, then follows
// the event stream where the log says what changed (deployments), and re-reads on a
// timer only what the log does not carry (node health, bytes held).

import { call, getCluster, getDeployments, getDistribution, listAll } from '/ui/api.js';
import { badge, bytes, debounce, errorBox, facts, fill, h, link, shortRevision, table, when } from '/ui/dom.js';

/** How often the cluster view re-reads members' health (not in the event log). */
const CLUSTER_REFRESH_MS = 3000;

/** How often a revision's spread is re-read while a swarm runs / once complete. */
const SPREAD_REFRESH_MS = 1000;
const SPREAD_IDLE_REFRESH_MS = 10000;

/** Deployments the list shows (newest first). */
const DEPLOYMENTS_SHOWN_MAX = 50;

/** Runs `load` now and every `interval_ms` until the returned function is called. */
function repeat(load, interval_ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    const next = await load();
    if (!stopped) timer = setTimeout(tick, typeof next === 'number' ? next : interval_ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** A view's frame: its title, its error box and its body. */
function frame(title, className) {
  const error = errorBox();
  const body = h('div', { class: 'body' });
  const el = h('section', { class: `view ${className}` }, h('h1', null, title), error, body);
  return { el, error, body };
}

/** Cluster: members, roles, health, the leader and each one's release. */
export function clusterView() {
  const { el, error, body } = frame('Cluster', 'cluster');
  const load = async () => {
    try {
      render(await getCluster());
      error.show(null);
    } catch (failure) {
      error.show(failure);
    }
  };
  const render = (cluster) => {
    const nodes = [...(cluster.nodes || [])].sort((a, b) => a.id - b.id);
    const leader = nodes.find((node) => node.id === cluster.leader);
    const alive = nodes.filter((node) => node.health === 'alive').length;
    const rows = nodes.map((node) => {
      const isLeader = node.id === cluster.leader;
      const release = node.release || {};
      return h(
        'tr',
        { class: isLeader ? 'leader' : null, dataset: { node: node.id, role: node.role, health: node.health } },
        h(
          'td',
          null,
          h('strong', null, `node-${node.id}`),
          isLeader ? h('span', { class: 'tag leader-tag' }, 'leader') : null,
        ),
        h('td', null, node.role),
        h('td', null, badge(node.health)),
        h('td', null, h('code', null, node.address), h('br'), link(`https://${node.api}/ui/`, node.api)),
        h(
          'td',
          null,
          release.version || '—',
          release.featureLevel ? h('small', null, ` (level ${release.featureLevel})`) : null,
        ),
        h(
          'td',
          null,
          Object.entries(node.tags || {}).map(([key, value]) => h('span', { class: 'tag' }, `${key}=${value}`)),
        ),
      );
    });
    fill(
      body,
      facts([
        ['Leader', leader ? `node-${leader.id} (${leader.address})` : 'none elected'],
        ['Members', `${nodes.length} (${alive} alive)`],
        ['Voters', `${nodes.filter((node) => node.role === 'voter').length} of ${cluster.voters_desired} wanted`],
        ['Raft term', cluster.term],
        ['Feature level', cluster.feature_level],
        ['Cluster id', h('code', null, cluster.cluster_id)],
      ]),
      table(['Node', 'Role', 'Health', 'Addresses', 'Release', 'Tags'], rows, { id: 'cluster-nodes' }),
    );
  };
  const stop = repeat(load, CLUSTER_REFRESH_MS);
  return { el, refresh: load, dispose: stop };
}

/** Applications: their deployment groups and latest revisions. */
export function applicationsView() {
  const { el, error, body } = frame('Applications and groups', 'applications');
  const sections = new Map();
  const load = async () => {
    try {
      const names = await listAll('ListApplications', {}, 'applications');
      fill(body, names.length ? null : h('p', { class: 'empty' }, 'No applications yet.'));
      sections.clear();
      for (const name of names) {
        const section = h('article', { class: 'card', dataset: { application: name } }, h('h2', null, name));
        sections.set(name, section);
        body.append(section);
      }
      await Promise.all(names.map(loadApplication));
      error.show(null);
    } catch (failure) {
      error.show(failure);
    }
  };
  const loadApplication = async (name) => {
    const section = sections.get(name);
    if (!section) return;
    const groups = await listAll('ListDeploymentGroups', { applicationName: name }, 'deploymentGroups');
    const info = groups.length
      ? (await call('BatchGetDeploymentGroups', { applicationName: name, deploymentGroupNames: groups.slice(0, 100) }))
          .deploymentGroupsInfo || []
      : [];
    const revisions = (await call('ListApplicationRevisions', { applicationName: name })).revisions || [];
    fill(
      section,
      h('h2', null, name),
      h('h3', null, 'Deployment groups'),
      info.length
        ? table(['Group', 'Configuration', 'Style', 'Last attempt', 'Last success'], info.map(groupRow))
        : h('p', { class: 'empty' }, 'No groups.'),
      h('h3', null, 'Revisions'),
      revisions.length
        ? table(['Revision', 'Size', 'Files', 'Registered'], revisions.slice(0, 10).map(revisionRow))
        : h('p', { class: 'empty' }, 'No revisions.'),
    );
  };
  const reloadOne = new Map();
  const onEvent = (event) => {
    if (event.type !== 'DeploymentStatusChanged') return;
    if (!sections.has(event.applicationName)) return reloadAll();
    if (!reloadOne.has(event.applicationName)) {
      reloadOne.set(
        event.applicationName,
        debounce(() => loadApplication(event.applicationName).catch(error.show), 300),
      );
    }
    reloadOne.get(event.applicationName)();
  };
  const reloadAll = debounce(load, 300);
  load();
  return { el, onEvent, refresh: load, dispose: () => reloadAll.cancel() };
}

function groupRow(group) {
  const last = (info) =>
    info ? [link(`#/deployments/${info.deploymentId}`, info.deploymentId), ' ', badge(info.status)] : '—';
  const style = group.deploymentStyle || {};
  return [
    h('strong', null, group.deploymentGroupName),
    group.deploymentConfigName,
    `${style.deploymentType || ''} ${group.computePlatform || ''}`.trim(),
    last(group.lastAttemptedDeployment),
    last(group.lastSuccessfulDeployment),
  ];
}

function revisionRow(revision) {
  const id = revision.revisionId || (revision.revisionLocation || {}).revisionId;
  const summary = revision.genericRevisionInfo || revision;
  return [
    id ? link(`#/revisions/${id}`, shortRevision(id), { title: 'where its bytes are' }) : '—',
    summary.sizeBytes !== undefined ? bytes(summary.sizeBytes) : '—',
    summary.files !== undefined ? summary.files : '—',
    when(summary.registerTime),
  ];
}

/** Deployments, newest first, their status following the event stream. */
export function deploymentsView() {
  const { el, error, body } = frame('Deployments', 'deployments');
  const rows = new Map();
  const load = async () => {
    try {
      const answer = await call('ListDeployments', {});
      const ids = (answer.deployments || []).slice(0, DEPLOYMENTS_SHOWN_MAX);
      const infos = await getDeployments(ids);
      rows.clear();
      const trs = infos.map((info) => {
        const tr = deploymentRow(info);
        rows.set(info.deploymentId, tr);
        return tr;
      });
      fill(
        body,
        trs.length
          ? table(['Deployment', 'Application / group', 'Status', 'Targets', 'Created'], trs, { id: 'deployment-list' })
          : h('p', { class: 'empty' }, 'No deployments yet.'),
      );
      error.show(null);
    } catch (failure) {
      error.show(failure);
    }
  };
  const reload = debounce(load, 300);
  const onEvent = (event) => {
    const row = rows.get(event.deploymentId);
    if (!row) return reload();
    if (event.type === 'DeploymentStatusChanged') row.querySelector('.badge').replaceWith(badge(event.status));
    if (event.type === 'TargetStatusChanged' || event.type === 'DeploymentStatusChanged')
      refreshRow(event.deploymentId);
  };
  const refreshRow = debounce(async () => {
    const infos = await getDeployments([...rows.keys()].slice(0, 25)).catch(() => []);
    for (const info of infos) rows.get(info.deploymentId)?.replaceWith(replaceRow(info));
  }, 500);
  const replaceRow = (info) => {
    const tr = deploymentRow(info);
    rows.set(info.deploymentId, tr);
    return tr;
  };
  load();
  return { el, onEvent, refresh: load, dispose: () => (reload.cancel(), refreshRow.cancel()) };
}

function deploymentRow(info) {
  const overview = info.deploymentOverview || {};
  const total = Object.values(overview).reduce((sum, count) => sum + count, 0);
  return h(
    'tr',
    { dataset: { deployment: info.deploymentId } },
    h('td', null, link(`#/deployments/${info.deploymentId}`, info.deploymentId)),
    h('td', null, `${info.applicationName} / ${info.deploymentGroupName}`),
    h('td', null, badge(info.status)),
    h(
      'td',
      null,
      `${overview.Succeeded || 0} of ${total} done`,
      overview.Failed ? h('span', { class: 'failed-count' }, `, ${overview.Failed} failed`) : null,
    ),
    h('td', null, when(info.createTime)),
  );
}

/** A revision's spread: bytes each node holds, re-read while a swarm runs. */
export function revisionView(revisionId) {
  const { el, error, body } = frame('Revision spread', 'revision');
  const load = async () => {
    try {
      const spread = await getDistribution(revisionId);
      const nodes = [...(spread.nodes || [])].sort((a, b) => a.id - b.id);
      const complete = nodes.filter((node) => node.complete).length;
      const rows = nodes.map((node) =>
        h(
          'tr',
          { dataset: { node: node.id, complete: node.complete } },
          h('td', null, `node-${node.id}`),
          h(
            'td',
            { class: 'bar' },
            h('progress', { max: spread.size || 1, value: Math.min(node.bytesHeld, spread.size || 1) }),
          ),
          h('td', null, `${bytes(node.bytesHeld)} of ${bytes(spread.size)}`),
          h('td', null, badge(node.complete ? 'complete' : 'fetching')),
        ),
      );
      fill(
        body,
        facts([
          ['Revision', h('code', { class: 'wrap' }, spread.revisionId)],
          ['Unique bytes', bytes(spread.size)],
          ['Complete on', `${complete} of ${nodes.length} nodes holding any of it`],
        ]),
        nodes.length
          ? table(['Node', 'Held', 'Bytes', 'Complete'], rows, { id: 'spread' })
          : h('p', { class: 'empty' }, 'No node holds any of it.'),
      );
      error.show(null);
      return complete === nodes.length ? SPREAD_IDLE_REFRESH_MS : SPREAD_REFRESH_MS;
    } catch (failure) {
      error.show(failure);
      return SPREAD_IDLE_REFRESH_MS;
    }
  };
  const stop = repeat(load, SPREAD_REFRESH_MS);
  return { el, refresh: load, dispose: stop };
}

/** Traffic routes: their targets' weights and states, and blue/green splits. */
export function trafficView() {
  const { el, error, body } = frame('Traffic routes', 'traffic');
  const load = async () => {
    try {
      const routes = (await call('ListRoutes', {})).routes || [];
      fill(
        body,
        routes.length
          ? routes.map(routeCard)
          : h('p', { class: 'empty' }, 'No routes. Create one with `fleetmesh traffic create-route`.'),
      );
      error.show(null);
    } catch (failure) {
      error.show(failure);
    }
  };
  const reload = debounce(load, 300);
  const onEvent = (event) => {
    if (event.type === 'TrafficShifted' || event.type === 'DeploymentStatusChanged') reload();
  };
  load();
  return { el, onEvent, refresh: load, dispose: () => reload.cancel() };
}

/** One route as a card: ports, routers, split, and a weight bar per target. */
export function routeCard(route) {
  const total = (route.targets || []).reduce(
    (sum, target) => sum + (target.state === 'serving' ? target.weight : 0),
    0,
  );
  const rows = (route.targets || []).map((target) => {
    const share = total && target.state === 'serving' ? (100 * target.weight) / total : 0;
    return h(
      'tr',
      { dataset: { target: target.targetId } },
      h('td', null, `node-${target.targetId}`, h('br'), h('small', null, target.address || 'no address')),
      h('td', null, badge(target.state)),
      h('td', { class: 'bar' }, h('progress', { max: 100, value: share })),
      h('td', null, `${share.toFixed(1)} %`, h('small', null, ` (weight ${target.weight})`)),
    );
  });
  const split = route.trafficSplit;
  return h(
    'article',
    { class: 'card', dataset: { route: route.routeName } },
    h('h2', null, route.routeName),
    facts([
      ['Ports', `${route.listenPort} → ${route.targetPort}`],
      ['Routers', (route.routers || []).map((id) => `node-${id}`).join(', ') || 'none'],
      [
        'Shift',
        split
          ? [link(`#/deployments/${split.deploymentId}`, split.deploymentId), ` sends ${split.greenPercent} % to green`]
          : null,
      ],
      ['Router errors', (route.routerErrors || []).map((error) => `node-${error.nodeId}: ${error.error}`).join('; ')],
    ]),
    rows.length ? table(['Target', 'State', 'Share', 'Weight'], rows) : h('p', { class: 'empty' }, 'No targets.'),
  );
}
