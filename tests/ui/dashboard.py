# The dashboard in a real browser (Debian's Chromium driven by Playwright for Python), run
# by tests/tests/e2e/dashboard.rs against a live cluster:
#
#   target/ui-venv/bin/python tests/ui/dashboard.py <base url> <admin token> <nodes> \
#       <first revision> <screenshot dir>
#
# It signs in (a wrong token first: the form says the node refused it), checks the cluster
# view, then prints `ready` and reads `<watched deployment> <deployment to stop>` from
# stdin: the test creates them only then, so the page sees every change live. It follows
# the first deployment's cells until one reaches Succeeded without a reload, opens a
# target and the revision's spread, and stops the second deployment with the Stop button.
# Then it prints `ready-rollback` and reads `<deployment to roll back>` (of the watched
# deployment's group, which has a good revision now): it presses "Stop and roll back" and
# sees the rollback deployment appear (linked from the stopped one, in the list, redeploying
# the first revision, until it succeeds). Last it checks at 375 px that nothing overflows.
# Exit 0 prints `ok ...` and `rollback <id>`; any failure prints one line `FAIL <step>: why`.

import os
import sys
import threading

from playwright.sync_api import sync_playwright

STEP_TIMEOUT_MS = 30000
# The whole run; the test kills the script 10 s later (tests/tests/e2e/dashboard.rs).
RUN_TIMEOUT_S = 140
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--ignore-certificate-errors",
]

step = "start"


class Failure(Exception):
    """A check that did not hold: its reason."""


def say(line):
    print(line, flush=True)


def one_line(reason):
    text = " | ".join(part.strip() for part in str(reason).splitlines() if part.strip())
    return text[:600]


def give_up():
    say(f"FAIL {step}: the whole run took over {RUN_TIMEOUT_S} s")
    os._exit(1)


def next_line():
    line = sys.stdin.readline()
    if not line:
        raise Failure("stdin closed before the test sent the deployments")
    return line.split()


def visit(page, target):
    page.evaluate("(target) => (location.hash = target)", target)


def get_deployment(page, deployment_id, token):
    """GetDeployment through the page's own fetch: what the API says, not what is shown."""
    return page.evaluate(
        """async ([id, bearer]) => {
          const response = await fetch('/v1/deploy/GetDeployment', {
            method: 'POST',
            headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ deploymentId: id }),
          });
          return (await response.json()).deploymentInfo;
        }""",
        [deployment_id, token],
    )


def sign_in(page, base_url, token):
    global step
    step = "sign in with a wrong token"
    page.goto(f"{base_url}/ui")
    page.fill("#token", "not-the-token")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    refused = page.text_content("#login-error").strip()
    if not refused.startswith("The node refused the token"):
        raise Failure(f"the wrong token's message is {refused!r}")
    if page.is_visible("#nav"):
        raise Failure("the menu shows after a refused token")

    step = "sign in"
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    stored = page.evaluate("() => sessionStorage.getItem('fleetmesh.token')")
    if stored != token:
        raise Failure(f"sessionStorage holds {stored!r}, not the token")
    return refused


def cluster_view(page, node_count):
    global step
    step = "cluster view"
    page.wait_for_function(
        """(count) => document.querySelectorAll('#cluster-nodes tbody tr[data-health="alive"]').length === count""",
        arg=node_count,
    )
    leaders = page.eval_on_selector_all("#cluster-nodes tr.leader", "(rows) => rows.map((row) => row.dataset.role)")
    if leaders != ["voter"]:
        raise Failure(f"expected one leader row, a voter; got {leaders}")
    page.wait_for_selector('#live[data-state="live"]')


WATCH_CELLS = """() => {
  window.dashboardSeen = {};
  const note = (cell) =>
    (window.dashboardSeen[cell.dataset.target] ||= []).at(-1) !== cell.dataset.status &&
    window.dashboardSeen[cell.dataset.target].push(cell.dataset.status);
  document.querySelectorAll('#waves .cell').forEach(note);
  new MutationObserver(() => document.querySelectorAll('#waves .cell').forEach(note)).observe(
    document.getElementById('view'),
    { subtree: true, attributes: true, childList: true },
  );
}"""

ANY_SUCCEEDED = """(targets) => targets.some(
  (target) => document.querySelector(`#waves .cell[data-target="${target}"]`)?.dataset.status === 'Succeeded')"""


def follow(page, watched, shot_dir):
    """Follows `watched` until it succeeds; its cell states and event rows, the targets it had pending."""
    global step
    step = f"the new deployment {watched} appears live"
    page.click(f'tr[data-deployment="{watched}"] a')
    page.wait_for_selector("#waves .cell")

    step = f"a cell of {watched} turns Succeeded live"
    first = page.eval_on_selector_all(
        "#waves .cell", "(cells) => Object.fromEntries(cells.map((c) => [c.dataset.target, c.dataset.status]))"
    )
    page.evaluate(WATCH_CELLS)
    pending = [target for target, status in first.items() if status != "Succeeded"]
    if not pending:
        raise Failure(f"every cell was Succeeded when the page opened it: {first}")
    page.wait_for_function(ANY_SUCCEEDED, arg=pending)
    # Past the cells' colour transition (0.4 s).
    page.wait_for_timeout(600)
    page.screenshot(path=os.path.join(shot_dir, "ui-screenshot.png"), full_page=True)
    page.wait_for_selector('#deployment-status[data-status="Succeeded"]', timeout=60000)
    if page.evaluate("() => window.dashboardTestMark") != "same page":
        raise Failure("the page was reloaded while following the deployment")
    seen = page.evaluate("() => window.dashboardSeen")
    cells = " ".join(f"{target}:{'>'.join(states)}" for target, states in seen.items())
    rows = page.eval_on_selector_all("table.events tbody tr", "(trs) => trs.length")
    if rows < 5:
        raise Failure(f"the deployment's event table has {rows} rows")
    return cells, rows, pending


def target_and_spread(page, target, revision):
    global step
    step = "a target with its lifecycle events"
    page.click(f'#waves .cell[data-target="{target}"]')
    page.wait_for_selector('#target-status .badge[data-status="Succeeded"]')
    lifecycle = page.eval_on_selector_all(
        "details.lifecycle", "(items) => items.map((item) => `${item.dataset.event}=${item.dataset.status}`)"
    )
    if "ApplicationStart=Succeeded" not in lifecycle:
        raise Failure(f"lifecycle events: {', '.join(lifecycle)}")

    step = "revision spread"
    visit(page, f"#/revisions/{revision}")
    page.wait_for_function("() => document.querySelectorAll('#spread tbody tr[data-complete=\"true\"]').length >= 2")

    step = "traffic view"
    page.click('#nav a[data-view="traffic"]')
    page.wait_for_selector(".view.traffic .body > *")


def stop(page, stopped, token):
    """Stops `stopped` with the Stop button; the message a refused second stop shows."""
    global step
    step = f"stop {stopped} with the button"
    visit(page, f"#/deployments/{stopped}")
    page.wait_for_selector('#waves .cell[data-status="InProgress"]')
    page.click('button[data-action="stop"]:not([disabled])')
    page.wait_for_selector('#deployment-status[data-status="Stopped"]')
    answer = get_deployment(page, stopped, token)
    if answer["status"] != "Stopped":
        raise Failure(f"the API says {stopped} is {answer['status']}")
    page.wait_for_selector('button[data-action="stop"][disabled]')

    step = "a refused action shows the API error"
    page.evaluate("() => document.querySelector('button[data-action=\"stop\"]').removeAttribute('disabled')")
    page.click('button[data-action="stop"]')
    page.wait_for_selector(".actions .error:not([hidden])")
    return page.text_content(".actions .error").strip()


# The id the "Rollback" fact of a deployment's header links to, once it shows one.
ROLLBACK_LINK = """() => {
  const term = [...document.querySelectorAll('dl.facts dt')].find((dt) => dt.textContent === 'Rollback');
  const link = term && term.nextElementSibling.querySelector('a[href^="#/deployments/"]');
  return link ? link.getAttribute('href').slice('#/deployments/'.length) : null;
}"""

# Whether the "Rollback" fact of a rollback deployment's header names `triggering`.
ROLLBACK_OF = """(triggering) => {
  const term = [...document.querySelectorAll('dl.facts dt')].find((dt) => dt.textContent === 'Rollback');
  return Boolean(term && term.nextElementSibling.textContent.includes(triggering));
}"""


def stop_and_roll_back(page, rolled, revision, token, shot_dir):
    """Stops `rolled` with "Stop and roll back"; the rollback deployment's id."""
    global step
    step = f"stop {rolled} with the Stop and roll back button"
    visit(page, f"#/deployments/{rolled}")
    page.wait_for_selector('#waves .cell[data-status="InProgress"]')
    page.click('button[data-action="stop-rollback"]:not([disabled])')
    page.wait_for_selector('#deployment-status[data-status="Stopped"]')

    step = f"the rollback of {rolled} appears"
    rollback = page.wait_for_function(ROLLBACK_LINK).json_value()
    answer = get_deployment(page, rolled, token)
    named = (answer.get("rollbackInfo") or {}).get("rollbackDeploymentId")
    if answer["status"] != "Stopped" or named != rollback:
        raise Failure(f"the API says {rolled} is {answer['status']} with rollback {named}; the page links {rollback}")
    page.click('#nav a[data-view="deployments"]')
    page.wait_for_selector(f'#deployment-list tr[data-deployment="{rollback}"]')

    step = f"the rollback {rollback} redeploys the first revision"
    page.click(f'tr[data-deployment="{rollback}"] a')
    page.wait_for_selector("#waves .cell")
    page.wait_for_selector(f'dl.facts a[href="#/revisions/{revision}"]')
    page.wait_for_function(ROLLBACK_OF, arg=rolled)
    page.wait_for_selector('#deployment-status[data-status="Succeeded"]', timeout=60000)
    # Its header is re-read once it ended: no button changes it any more.
    page.wait_for_selector('button[data-action="stop-rollback"][disabled]')
    page.screenshot(path=os.path.join(shot_dir, "ui-screenshot-rollback.png"), full_page=True)
    return rollback


def narrow(page, hashes, watched, shot_dir):
    """Each view at 375 px: the document's widths; none may be wider."""
    global step
    step = "narrow screen"
    page.set_viewport_size({"width": 375, "height": 800})
    widths = []
    for target in hashes:
        visit(page, target)
        page.wait_for_selector(".view .body > *, #waves .cell, #target-status")
        page.wait_for_timeout(300)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        widths.append(width)
        if width > 375:
            raise Failure(f"{target} is {width} px wide at a 375 px viewport")
    visit(page, f"#/deployments/{watched}")
    page.wait_for_selector("#waves .cell")
    page.screenshot(path=os.path.join(shot_dir, "ui-screenshot-narrow.png"))
    return widths


def run(browser, base_url, token, node_count, revision, shot_dir):
    global step
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(error.message))
    page.on("dialog", lambda dialog: dialog.accept())

    refused = sign_in(page, base_url, token)
    cluster_view(page, node_count)

    step = "deployments view"
    page.click('#nav a[data-view="deployments"]')
    page.wait_for_selector(".view.deployments .body > *")
    # Marks this document: a reload would lose it.
    page.evaluate("() => (window.dashboardTestMark = 'same page')")
    say("ready")
    watched, stopped = next_line()

    cells, rows, pending = follow(page, watched, shot_dir)
    target_and_spread(page, pending[0], revision)
    refusal = stop(page, stopped, token)

    step = "ask for a deployment to roll back"
    say("ready-rollback")
    (rolled,) = next_line()
    rollback = stop_and_roll_back(page, rolled, revision, token, shot_dir)

    widths = narrow(
        page,
        [
            "#/cluster",
            "#/deployments",
            f"#/deployments/{watched}",
            f"#/deployments/{watched}/targets/{pending[0]}",
            f"#/deployments/{rollback}",
            f"#/revisions/{revision}",
            "#/applications",
            "#/traffic",
        ],
        watched,
        shot_dir,
    )
    step = "the end"
    if page.evaluate("() => window.dashboardTestMark") != "same page":
        raise Failure("the page was reloaded")
    if page_errors:
        raise Failure(f"errors in the page: {'; '.join(page_errors)}")
    say(f"rollback {rollback}")
    say(
        f"ok cells {cells}; {rows} event rows; wrong token: {refused}; refused: {refusal}; "
        f"rolled back by {rollback}; widths at 375: {','.join(map(str, widths))}"
    )


def main():
    global step
    if len(sys.argv) != 6:
        say("FAIL start: usage: dashboard.py <url> <token> <nodes> <revision> <screenshot dir>")
        return 1
    base_url, token, node_count, revision, shot_dir = sys.argv[1:]
    timer = threading.Timer(RUN_TIMEOUT_S, give_up)
    timer.daemon = True
    timer.start()
    try:
        with sync_playwright() as playwright:
            step = "launch chromium"
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=LAUNCH_ARGS, timeout=STEP_TIMEOUT_MS
            )
            try:
                run(browser, base_url, token, int(node_count), revision, shot_dir)
            finally:
                browser.close()
    except Exception as error:  # every failure, a timeout or a failed check, is one line
        say(f"FAIL {step}: {one_line(error)}")
        return 1
    timer.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
