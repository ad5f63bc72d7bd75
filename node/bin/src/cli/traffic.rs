//! `fleetmesh traffic ...`: traffic routes, fleetmesh's built-in load balancer.

use anyhow::Context;
use clap::Subcommand;
use fleetmesh_model::{
    CreateRouteInput, Empty, ListRoutesInput, ListRoutesOutput, RouteInfo, RouteNameInput, RouteTargetInput,
    SetRouteTargetsInput,
};

use super::client::ApiClient;
use super::table::Table;
use super::{parse_tag, tag_map};

/// `fleetmesh traffic ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TrafficCommand {
    /// Create a route: every node whose tags match all --router-tag pairs listens on
    /// its advertised address at --listen-port and proxies TCP to the route's targets
    /// at --target-port, by weight. The route starts without targets; give them with
    /// set-route-targets. Prints the route.
    CreateRoute {
        /// The route's name (1-100 of A-Z a-z 0-9 . _ + = , @ -).
        #[arg(long, value_name = "NAME")]
        route_name: String,
        /// Port the routers listen on (1-65535; one route per port).
        #[arg(long, value_name = "PORT")]
        listen_port: u32,
        /// Port the targets serve on (1-65535).
        #[arg(long, value_name = "PORT")]
        target_port: u32,
        /// Which nodes route: those with this tag KEY=VALUE (repeat: all must match).
        #[arg(long = "router-tag", value_name = "KEY=VALUE", value_parser = parse_tag, required = true)]
        router_tags: Vec<(String, String)>,
        /// Seconds open connections to a target that stops serving (weight 0 or
        /// draining) may continue before they are closed (0-3600).
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        drain_seconds: u32,
        /// Instead of proxying, routers run this program (an absolute path on the
        /// router nodes) with the route's JSON (as get-route --json prints it) on stdin
        /// after every change, e.g. examples/nginx-upstream/nginx-upstream.sh.
        #[arg(long, value_name = "PATH")]
        command: Option<String>,
    },
    /// Show a route: its ports, routers and targets with their addresses, weights and
    /// states.
    GetRoute {
        /// The route.
        #[arg(long, value_name = "NAME")]
        route_name: String,
        /// Print JSON ({"routeName","listenPort","targetPort","routers":[ids],
        /// "targets":[{"targetId","address","weight","state"}], ...}).
        #[arg(long)]
        json: bool,
    },
    /// List the routes.
    ListRoutes {
        /// Print JSON ({"routes": [route, ...]}).
        #[arg(long)]
        json: bool,
    },
    /// Delete a route: its routers stop listening and close its connections.
    DeleteRoute {
        /// The route.
        #[arg(long, value_name = "NAME")]
        route_name: String,
    },
    /// Replace a route's targets (an operator's manual override), e.g.
    /// --targets '[{"targetId":2,"weight":90},{"targetId":3,"weight":10,"state":"serving"}]'.
    /// Weights are relative, 0-1000; state is serving (default), draining (no new
    /// connections, open ones close after the drain time) or blocked (none at all).
    /// Routers follow within a poll answer (~100 ms). Prints the route.
    SetRouteTargets {
        /// The route.
        #[arg(long, value_name = "NAME")]
        route_name: String,
        /// The targets as JSON: [{"targetId": NODE, "weight": W, "state": S}, ...].
        #[arg(long, value_name = "JSON")]
        targets: String,
    },
}

/// Runs a `traffic` verb.
///
/// # Errors
/// A bad flag or the API call failed.
pub(crate) fn run(client: &ApiClient, command: TrafficCommand) -> anyhow::Result<()> {
    match command {
        TrafficCommand::CreateRoute { route_name, listen_port, target_port, router_tags, drain_seconds, command } => {
            let input = CreateRouteInput {
                route_name,
                listen_port,
                target_port,
                router_tags: tag_map(&router_tags),
                drain_seconds: Some(drain_seconds),
                command,
            };
            let route: RouteInfo = client.call("CreateRoute", &input)?;
            print!("{}", render(&route));
        }
        TrafficCommand::GetRoute { route_name, json } => {
            let route: RouteInfo = client.call("GetRoute", &RouteNameInput { route_name })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&route)?);
            } else {
                print!("{}", render(&route));
            }
        }
        TrafficCommand::ListRoutes { json } => {
            let list: ListRoutesOutput = client.call("ListRoutes", &ListRoutesInput {})?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", render_list(&list));
            }
        }
        TrafficCommand::DeleteRoute { route_name } => {
            client.call::<_, Empty>("DeleteRoute", &RouteNameInput { route_name: route_name.clone() })?;
            println!("deleted route {route_name}");
        }
        TrafficCommand::SetRouteTargets { route_name, targets } => {
            let targets: Vec<RouteTargetInput> = serde_json::from_str(&targets)
                .context("--targets must be a JSON list like [{\"targetId\":2,\"weight\":90,\"state\":\"serving\"}]")?;
            let route: RouteInfo = client.call("SetRouteTargets", &SetRouteTargetsInput { route_name, targets })?;
            print!("{}", render(&route));
        }
    }
    Ok(())
}

/// A route for people.
fn render(route: &RouteInfo) -> String {
    let routers = route.routers.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let selector = route.router_tags.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",");
    let mut out = format!(
        "route {}   listen :{}   target :{}   drain {} s   routers [{}] ({})\n",
        route.route_name, route.listen_port, route.target_port, route.drain_seconds, routers, selector
    );
    if let Some(command) = &route.command {
        out.push_str(&format!("command {command}\n"));
    }
    if let Some(split) = &route.traffic_split {
        out.push_str(&format!(
            "split: deployment {} sends {} % of new connections to its green fleet (weights below are the \
             routers' own, out of 100000)\n",
            split.deployment_id, split.green_percent
        ));
    }
    out.push('\n');
    let mut table = Table::new(&["TARGET", "ADDRESS", "WEIGHT", "STATE"]);
    for target in &route.targets {
        table.row(vec![
            target.target_id.to_string(),
            target.address.clone(),
            target.weight.to_string(),
            target.state.as_str().to_string(),
        ]);
    }
    out.push_str(&table.render());
    out
}

/// The routes as one table.
fn render_list(list: &ListRoutesOutput) -> String {
    let mut table = Table::new(&["ROUTE", "LISTEN", "TARGET PORT", "ROUTERS", "TARGETS"]);
    for route in &list.routes {
        table.row(vec![
            route.route_name.clone(),
            route.listen_port.to_string(),
            route.target_port.to_string(),
            route.routers.len().to_string(),
            route.targets.len().to_string(),
        ]);
    }
    table.render()
}
