// The API client: the token the operator entered (kept in this tab's sessionStorage
// only), and JSON calls that carry it as `Authorization: Bearer`.

const TOKEN_KEY = 'fleetmesh.token';

/** Most pages a `List*` call follows before it stops (100 items each). */
const LIST_PAGES_MAX = 20;

/** An answer that is not a 2xx: the status and the API's one-line reason. */
export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

let unauthorized = () => {};

/** Calls `callback(message)` whenever the node refuses the token (401). */
export function onUnauthorized(callback) {
  unauthorized = callback;
}

/** The token entered in this tab, or ''. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/** Keeps `value` as this tab's token. */
export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value.trim());
}

/** Forgets the token. */
export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The headers of every API call. */
export function authorization() {
  return { Authorization: `Bearer ${token()}` };
}

/** The error a non-2xx `response` with body `text` stands for. */
export function errorOf(response, text) {
  let answer = null;
  try {
    answer = text ? JSON.parse(text) : null;
  } catch {
    answer = null;
  }
  const message = answer && answer.error ? answer.error : `${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, message, answer && answer.field);
}

async function request(method, path, body) {
  const headers = authorization();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    response = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  } catch (error) {
    throw new ApiError(0, `cannot reach this node: ${error.message}`);
  }
  const text = await response.text();
  if (!response.ok) {
    const error = errorOf(response, text);
    if (response.status === 401) unauthorized(error.message);
    throw error;
  }
  return text ? JSON.parse(text) : {};
}

/** `POST /v1/deploy/<operation>` with `input`; resolves to the operation's output. */
export function call(operation, input) {
  return request('POST', `/v1/deploy/${encodeURIComponent(operation)}`, input || {});
}

/** `GET /v1/cluster`: the members as the leader sees them. */
export function getCluster() {
  return request('GET', '/v1/cluster');
}

/** `GET /v1/revisions/<id>/distribution`: bytes of the revision each node holds. */
export function getDistribution(revisionId) {
  return request('GET', `/v1/revisions/${encodeURIComponent(revisionId)}/distribution`);
}

/** Every item of a paged `List*` operation, in `key` of its answers. */
export async function listAll(operation, input, key) {
  const items = [];
  let nextToken;
  for (let page = 0; page < LIST_PAGES_MAX; page += 1) {
    const answer = await call(operation, { ...input, ...(nextToken ? { nextToken } : {}) });
    items.push(...(answer[key] || []));
    nextToken = answer.nextToken;
    if (!nextToken) break;
  }
  return items;
}

/** Calls `operation` once per slice of `ids` at most `size` long (AWS's batch limits). */
export async function batches(ids, size, fetchSlice) {
  const slices = [];
  for (let start = 0; start < ids.length; start += size) slices.push(ids.slice(start, start + size));
  const answers = await Promise.all(slices.map(fetchSlice));
  return answers.flat();
}

/** The deployments `ids` (any number), in order. */
export function getDeployments(ids) {
  return batches(ids, 25, async (slice) => {
    const answer = await call('BatchGetDeployments', { deploymentIds: slice });
    return answer.deploymentsInfo || [];
  });
}

/** The number of the newest event in the log: where a live stream starts. */
export async function lastEventId() {
  const answer = await call('ListEvents', { since: Number.MAX_SAFE_INTEGER, maxItems: 1 });
  return answer.lastEventId || 0;
}

/** Deployment `deploymentId`'s events, oldest first (up to 10,000 kept ones). */
export async function deploymentEvents(deploymentId) {
  try {
    const answer = await call('ListEvents', { deploymentId, maxItems: 10000 });
    return answer.events || [];
  } catch (error) {
    // The oldest events were purged: the log has no story from the start to show.
    if (error.status === 410) return [];
    throw error;
  }
}
