//! `kici admin …` (`cli.md` §11): a thin client of the REST API. Tables for humans, the API's
//! JSON with `--json`; a refused request prints the server's message and exits 1.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::{Client, ClientError, DEFAULT_URL, Token, encode};
use super::{GlobalArgs, exit};

const ADMIN: &str = "/api/v1/admin";

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Orchestrator URL (also: KICI_ADMIN_URL).
    #[arg(long, global = true, env = "KICI_ADMIN_URL", default_value = DEFAULT_URL)]
    url: String,
    /// Read the admin token from this file (default: the KICI_ADMIN_TOKEN variable). Tokens
    /// are never taken from the command line, where other users can read them.
    #[arg(long, global = true, value_name = "PATH")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Admin tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Agent tokens.
    #[command(subcommand, name = "agent-token")]
    AgentToken(AgentTokenCommand),
    /// Connected agents.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Webhook sources.
    #[command(subcommand)]
    Source(SourceCommand),
    /// Runs, their jobs and logs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Start workflows by hand (`workflow_dispatch`).
    Dispatch(DispatchArgs),
    /// The dispatch queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Stored webhook deliveries and dead letters.
    #[command(subcommand)]
    Inbox(InboxCommand),
    /// Health checks of the orchestrator and its dependencies.
    Diagnose,
    /// The effective configuration (secrets redacted).
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an admin token; it is printed once.
    Create {
        label: String,
        #[arg(long, value_parser = ["owner", "admin", "auditor"])]
        role: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AgentTokenCommand {
    /// Create an agent token; it is printed once.
    Create {
        #[arg(long)]
        label: Option<String>,
        /// Labels the agent may advertise (comma-separated).
        #[arg(long, value_delimiter = ',')]
        labels: Option<Vec<String>>,
        /// Taints: the agent only takes jobs that require them.
        #[arg(long = "mandatory-label")]
        mandatory_labels: Vec<String>,
        #[arg(long)]
        privileged_root: bool,
        /// Lifetime in seconds.
        #[arg(long)]
        expires_in: Option<u64>,
        #[arg(long)]
        max_uses: Option<u32>,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
    List,
}

#[derive(Debug, Subcommand)]
enum SourceCommand {
    /// Register a source.
    #[command(subcommand)]
    Add(SourceAdd),
    List,
    Show {
        name: String,
    },
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
    Remove {
        name: String,
    },
    /// Post a push for a repository of a local source, as its post-receive hook would.
    TriggerLocal(TriggerLocalArgs),
}

#[derive(Debug, Subcommand)]
enum SourceAdd {
    /// Repositories on the orchestrator's disk at <path>/<owner>/<name>.
    Local {
        #[arg(long)]
        name: String,
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        clone_url_base: Option<String>,
    },
    /// Any JSON webhook.
    Generic {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "none", value_parser = ["hmac_sha256", "bearer_token", "ip_allowlist", "none"])]
        verification: String,
        /// Read the verification secret from stdin.
        #[arg(long)]
        secret_stdin: bool,
        #[arg(long = "allow")]
        allow: Vec<String>,
        #[arg(long)]
        event_header: Option<String>,
        #[arg(long)]
        event_path: Option<String>,
        #[arg(long)]
        rate_limit: Option<u32>,
        #[arg(long)]
        max_payload: Option<u64>,
        #[arg(long, value_delimiter = ',')]
        allowed_events: Option<Vec<String>>,
    },
    /// Any git forge by URL template (universal-git).
    Git {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["gitea", "forgejo", "gogs", "gitlab-repo", "github-repo", "custom"])]
        preset: String,
        #[arg(long)]
        url_template: String,
        /// Read a personal access token from stdin.
        #[arg(long)]
        pat_stdin: bool,
        /// Read the webhook secret from this file.
        #[arg(long)]
        webhook_secret_file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct TriggerLocalArgs {
    #[arg(long)]
    name: String,
    /// owner/name under the source's path.
    #[arg(long)]
    repo: String,
    #[arg(long, default_value = "push", value_parser = ["push", "tag"])]
    event: String,
    /// Default: the repository's current branch.
    #[arg(long = "ref")]
    git_ref: Option<String>,
    /// Default: the commit the ref points at.
    #[arg(long)]
    sha: Option<String>,
    #[arg(long)]
    before: Option<String>,
    /// The source's base path on this machine (default: asked from the orchestrator).
    #[arg(long)]
    path: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long)]
        repo: Option<String>,
        #[arg(long)]
        branch: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    Show {
        run_id: String,
    },
    Jobs {
        run_id: String,
    },
    /// Print a run's step logs; -f follows them live.
    Logs {
        run_id: String,
        /// Only this job (id or name).
        #[arg(long)]
        job: Option<String>,
        #[arg(long)]
        step: Option<i64>,
        #[arg(short = 'f', long)]
        follow: bool,
    },
    Cancel {
        run_id: String,
        #[arg(long)]
        force: bool,
    },
    /// Run a finished run's workflow again at the same commit, as a new run.
    Rerun {
        run_id: String,
    },
    CancelJob {
        run_id: String,
        job_id: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
struct DispatchArgs {
    #[arg(long)]
    source: String,
    #[arg(long)]
    repo: String,
    #[arg(long = "type", default_value = "workflow_dispatch")]
    event_type: String,
    #[arg(long)]
    branch: Option<String>,
    #[arg(long)]
    sha: Option<String>,
    #[arg(long = "input", value_name = "K=V")]
    inputs: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    List,
    Show {
        job_id: String,
    },
    /// Expire every pending job.
    Clear {
        #[arg(long)]
        confirm: bool,
    },
}

#[derive(Debug, Subcommand)]
enum InboxCommand {
    List {
        #[arg(long)]
        status: Option<String>,
    },
    Show {
        id: String,
    },
    Retry {
        id: String,
    },
    Replay {
        id: String,
    },
    /// Dead letters only.
    Dlq,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    Show,
}

pub fn run(global: &GlobalArgs, args: &AdminArgs) -> u8 {
    let client = match Token::resolve(args.token_file.as_deref(), "KICI_ADMIN_TOKEN")
        .and_then(|token| Client::new(&args.url, token))
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {error}");
            return exit::USAGE;
        }
    };
    match execute(global, &client, &args.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            exit::FAILURE
        }
    }
}

fn execute(
    global: &GlobalArgs,
    client: &Client,
    command: &AdminCommand,
) -> Result<u8, ClientError> {
    let out = Output { json: global.json };
    match command {
        AdminCommand::Token(command) => match command {
            TokenCommand::Create {
                label,
                role,
                expires_in_days,
            } => {
                let mut body = json!({ "label": label, "role": role });
                if let Some(days) = expires_in_days {
                    body["expiresInDays"] = json!(days);
                }
                let created = client.post(&format!("{ADMIN}/tokens"), &body)?;
                out.created_secret(&created, "token");
            }
            TokenCommand::List => out.table(
                &client.get(&format!("{ADMIN}/tokens"))?,
                &[
                    ("ID", "id"),
                    ("LABEL", "label"),
                    ("ROLE", "role"),
                    ("CREATED", "createdAt"),
                    ("REVOKED", "revokedAt"),
                ],
            ),
            TokenCommand::Revoke { id } => {
                client.delete(&format!("{ADMIN}/tokens/{}", encode(id)))?;
                out.done(&format!("revoked admin token {id}"));
            }
        },
        AdminCommand::AgentToken(command) => match command {
            AgentTokenCommand::Create {
                label,
                labels,
                mandatory_labels,
                privileged_root,
                expires_in,
                max_uses,
            } => {
                let mut body = Map::new();
                insert_some(&mut body, "label", label.as_ref().map(|v| json!(v)));
                insert_some(&mut body, "labels", labels.as_ref().map(|v| json!(v)));
                if !mandatory_labels.is_empty() {
                    body.insert("mandatoryLabels".into(), json!(mandatory_labels));
                }
                if *privileged_root {
                    body.insert("privilegedRoot".into(), json!(true));
                }
                insert_some(&mut body, "expiresInSeconds", expires_in.map(|v| json!(v)));
                insert_some(&mut body, "maxUses", max_uses.map(|v| json!(v)));
                let created =
                    client.post(&format!("{ADMIN}/agent-tokens"), &Value::Object(body))?;
                out.created_secret(&created, "token");
            }
            AgentTokenCommand::List => out.table(
                &client.get(&format!("{ADMIN}/agent-tokens"))?,
                &[
                    ("ID", "id"),
                    ("PREFIX", "prefix"),
                    ("LABEL", "label"),
                    ("USES", "uses"),
                    ("REVOKED", "revokedAt"),
                ],
            ),
            AgentTokenCommand::Revoke { id } => {
                client.delete(&format!("{ADMIN}/agent-tokens/{}", encode(id)))?;
                out.done(&format!("revoked agent token {id}"));
            }
        },
        AdminCommand::Agents(AgentsCommand::List) => out.table(
            &client.get(&format!("{ADMIN}/agents"))?,
            &[
                ("AGENT", "agentId"),
                ("CONNECTED", "connected"),
                ("JOBS", "activeJobs"),
                ("SLOTS", "maxConcurrency"),
                ("LABELS", "labels"),
                ("DRAINING", "draining"),
            ],
        ),
        AdminCommand::Source(command) => return source(client, &out, command),
        AdminCommand::Runs(command) => return runs(client, &out, command),
        AdminCommand::Dispatch(args) => {
            let mut inputs = Map::new();
            for pair in &args.inputs {
                let Some((key, value)) = pair.split_once('=') else {
                    eprintln!("error: --input {pair:?} is not K=V");
                    return Ok(exit::USAGE);
                };
                inputs.insert(key.to_string(), json!(value));
            }
            let mut body =
                json!({ "source": args.source, "repo": args.repo, "type": args.event_type });
            if let Some(branch) = &args.branch {
                body["branch"] = json!(branch);
            }
            if let Some(sha) = &args.sha {
                body["sha"] = json!(sha);
            }
            if !inputs.is_empty() {
                body["inputs"] = Value::Object(inputs);
            }
            let accepted = client.post(&format!("{ADMIN}/dispatch"), &body)?;
            out.value(&accepted, |v| {
                format!("accepted: inbox item {}", field(v, "inboxId"))
            });
        }
        AdminCommand::Queue(command) => match command {
            QueueCommand::List => out.table(
                &client.get(&format!("{ADMIN}/queue"))?,
                &[
                    ("JOB", "id"),
                    ("RUN", "runId"),
                    ("WORKFLOW", "workflowName"),
                    ("NAME", "jobName"),
                    ("STATUS", "status"),
                    ("ATTEMPTS", "dispatchAttempts"),
                ],
            ),
            QueueCommand::Show { job_id } => {
                out.pretty(&client.get(&format!("{ADMIN}/queue/{}", encode(job_id)))?)
            }
            QueueCommand::Clear { confirm } => {
                if !confirm {
                    eprintln!("error: `queue clear` expires every pending job; pass --confirm");
                    return Ok(exit::USAGE);
                }
                let answer =
                    client.post(&format!("{ADMIN}/queue/clear"), &json!({"confirm": true}))?;
                out.value(&answer, |v| format!("cleared: {v}"));
            }
        },
        AdminCommand::Inbox(command) => match command {
            InboxCommand::List { status } => {
                let path = match status {
                    Some(status) => format!("{ADMIN}/inbox?status={}", encode(status)),
                    None => format!("{ADMIN}/inbox"),
                };
                out.table(&client.get(&path)?, INBOX_COLUMNS)
            }
            InboxCommand::Dlq => out.table(
                &client.get(&format!("{ADMIN}/inbox?status=dead"))?,
                INBOX_COLUMNS,
            ),
            InboxCommand::Show { id } => {
                out.pretty(&client.get(&format!("{ADMIN}/inbox/{}", encode(id)))?)
            }
            InboxCommand::Retry { id } => {
                let answer =
                    client.post(&format!("{ADMIN}/inbox/{}/retry", encode(id)), &json!({}))?;
                out.value(&answer, |_| {
                    format!("inbox item {id} queued for another attempt")
                });
            }
            InboxCommand::Replay { id } => {
                let answer =
                    client.post(&format!("{ADMIN}/inbox/{}/replay", encode(id)), &json!({}))?;
                out.value(&answer, |v| {
                    format!("replayed as inbox item {}", field(v, "id"))
                });
            }
        },
        AdminCommand::Diagnose => {
            let report = client.get(&format!("{ADMIN}/diagnose"))?;
            out.table(
                &report["checks"],
                &[
                    ("CHECK", "name"),
                    ("STATUS", "status"),
                    ("DETAIL", "detail"),
                ],
            );
            let statuses: Vec<&str> = report["checks"]
                .as_array()
                .map(|c| c.iter().filter_map(|c| c["status"].as_str()).collect())
                .unwrap_or_default();
            if statuses.contains(&"fail") {
                return Ok(exit::FAILURE);
            }
            if statuses.contains(&"warn") {
                return Ok(exit::USAGE);
            }
        }
        AdminCommand::Config(ConfigCommand::Show) => {
            out.pretty(&client.get(&format!("{ADMIN}/config"))?)
        }
    }
    Ok(exit::OK)
}

const INBOX_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("EVENT", "event"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("OUTCOME", "outcome"),
    ("ERROR", "lastError"),
];

fn source(client: &Client, out: &Output, command: &SourceCommand) -> Result<u8, ClientError> {
    match command {
        SourceCommand::Add(add) => {
            let body = match add {
                SourceAdd::Local {
                    name,
                    path,
                    clone_url_base,
                } => {
                    let path = match std::path::absolute(path) {
                        Ok(path) => path,
                        Err(e) => {
                            eprintln!("error: --path {}: {e}", path.display());
                            return Ok(exit::USAGE);
                        }
                    };
                    let mut config = json!({ "path": path.display().to_string() });
                    if let Some(base) = clone_url_base {
                        config["cloneUrlBase"] = json!(base);
                    }
                    json!({ "type": "local", "name": name, "config": config })
                }
                SourceAdd::Generic {
                    name,
                    verification,
                    secret_stdin,
                    allow,
                    event_header,
                    event_path,
                    rate_limit,
                    max_payload,
                    allowed_events,
                } => {
                    let mut method = json!({ "method": verification });
                    if !allow.is_empty() {
                        method["allowlist"] = json!(allow);
                    }
                    let mut config = Map::new();
                    config.insert("verification".into(), method);
                    insert_some(
                        &mut config,
                        "eventTypeHeader",
                        event_header.as_ref().map(|v| json!(v)),
                    );
                    insert_some(
                        &mut config,
                        "eventTypePath",
                        event_path.as_ref().map(|v| json!(v)),
                    );
                    insert_some(&mut config, "rateLimitRpm", rate_limit.map(|v| json!(v)));
                    insert_some(
                        &mut config,
                        "maxPayloadBytes",
                        max_payload.map(|v| json!(v)),
                    );
                    insert_some(
                        &mut config,
                        "allowedEvents",
                        allowed_events.as_ref().map(|v| json!(v)),
                    );
                    let mut body = json!({ "type": "generic", "name": name, "config": config });
                    if *secret_stdin {
                        body["secrets"] = json!({ "verificationSecret": read_stdin_secret()? });
                    }
                    body
                }
                SourceAdd::Git {
                    name,
                    preset,
                    url_template,
                    pat_stdin,
                    webhook_secret_file,
                } => {
                    let mut config = json!({ "preset": preset, "urlTemplate": url_template, "credentialType": "none" });
                    let mut secrets = Map::new();
                    if *pat_stdin {
                        config["credentialType"] = json!("pat");
                        secrets.insert("pat".into(), json!(read_stdin_secret()?));
                    }
                    if let Some(file) = webhook_secret_file
                        && let Some(secret) = Token::resolve(Some(file), "")?
                    {
                        secrets.insert("webhookSecret".into(), json!(secret.expose()));
                    }
                    json!({ "type": "git", "name": name, "config": config, "secrets": secrets })
                }
            };
            let created = client.post(&format!("{ADMIN}/sources"), &body)?;
            out.value(&created, |v| {
                format!(
                    "source {} created; webhook URL: {}",
                    field(v, "name"),
                    field(v, "webhookUrl")
                )
            });
        }
        SourceCommand::List => out.table(
            &client.get(&format!("{ADMIN}/sources"))?,
            &[
                ("NAME", "name"),
                ("TYPE", "type"),
                ("ENABLED", "enabled"),
                ("WEBHOOK", "webhookUrl"),
            ],
        ),
        SourceCommand::Show { name } => {
            out.pretty(&client.get(&format!("{ADMIN}/sources/{}", encode(name)))?)
        }
        SourceCommand::Enable { name } => {
            client.post(
                &format!("{ADMIN}/sources/{}/enable", encode(name)),
                &json!({}),
            )?;
            out.done(&format!("source {name} enabled"));
        }
        SourceCommand::Disable { name } => {
            client.post(
                &format!("{ADMIN}/sources/{}/disable", encode(name)),
                &json!({}),
            )?;
            out.done(&format!("source {name} disabled"));
        }
        SourceCommand::Remove { name } => {
            client.delete(&format!("{ADMIN}/sources/{}", encode(name)))?;
            out.done(&format!("source {name} removed"));
        }
        SourceCommand::TriggerLocal(args) => return trigger_local(client, out, args),
    }
    Ok(exit::OK)
}

fn trigger_local(
    client: &Client,
    out: &Output,
    args: &TriggerLocalArgs,
) -> Result<u8, ClientError> {
    let base = match &args.path {
        Some(path) => path.clone(),
        None => {
            let source = client.get(&format!("{ADMIN}/sources/{}", encode(&args.name)))?;
            match source["config"]["path"].as_str() {
                Some(path) => PathBuf::from(path),
                None => {
                    eprintln!("error: source {} has no local path; pass --path", args.name);
                    return Ok(exit::USAGE);
                }
            }
        }
    };
    let repo_dir = base.join(&args.repo);
    let push = match super::up::local_push(
        &repo_dir,
        &args.repo,
        args.git_ref.as_deref(),
        args.sha.as_deref(),
        args.before.as_deref(),
        args.event == "tag",
    ) {
        Ok(push) => push,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(exit::FAILURE);
        }
    };
    let answer = super::up::post_push(client, &args.name, &push)?;
    out.value(&answer, |v| {
        format!("{} {} → {}", field(v, "status"), push.git_ref, push.after)
    });
    Ok(exit::OK)
}

fn runs(client: &Client, out: &Output, command: &RunsCommand) -> Result<u8, ClientError> {
    match command {
        RunsCommand::List {
            status,
            workflow,
            repo,
            branch,
            limit,
        } => {
            let mut query = Vec::new();
            for (key, value) in [
                ("status", status),
                ("workflow", workflow),
                ("repo", repo),
                ("branch", branch),
            ] {
                if let Some(value) = value {
                    query.push(format!("{key}={}", encode(value)));
                }
            }
            if let Some(limit) = limit {
                query.push(format!("limit={limit}"));
            }
            let path = if query.is_empty() {
                format!("{ADMIN}/runs")
            } else {
                format!("{ADMIN}/runs?{}", query.join("&"))
            };
            out.table(
                &client.get(&path)?,
                &[
                    ("RUN", "runId"),
                    ("WORKFLOW", "workflowName"),
                    ("STATUS", "status"),
                    ("REPO", "repo"),
                    ("REF", "ref"),
                    ("DURATION", "durationMs"),
                ],
            );
        }
        RunsCommand::Show { run_id } => {
            out.pretty(&client.get(&format!("{ADMIN}/runs/{}", encode(run_id)))?)
        }
        RunsCommand::Jobs { run_id } => out.table(
            &client.get(&format!("{ADMIN}/runs/{}/jobs", encode(run_id)))?,
            &[
                ("JOB", "jobId"),
                ("NAME", "name"),
                ("STATUS", "status"),
                ("AGENT", "agentId"),
                ("DURATION", "durationMs"),
                ("ERROR", "error"),
            ],
        ),
        RunsCommand::Logs {
            run_id,
            job,
            step,
            follow,
        } => {
            if *follow {
                return super::remote::follow_logs(client, run_id, job.as_deref(), *step);
            }
            return super::remote::print_logs(client, run_id, job.as_deref(), *step, out.json);
        }
        RunsCommand::Cancel { run_id, force } => {
            let answer = client.post(
                &format!("{ADMIN}/runs/{}/cancel", encode(run_id)),
                &json!({ "force": force }),
            )?;
            out.value(&answer, |v| {
                format!("run {run_id}: {}", field(v, "outcome"))
            });
        }
        RunsCommand::Rerun { run_id } => {
            let answer = client.post(
                &format!("{ADMIN}/runs/{}/rerun", encode(run_id)),
                &json!({}),
            )?;
            out.value(&answer, |v| {
                format!(
                    "re-run of {run_id} queued (inbox item {}); its run shows in `kici admin runs list`",
                    field(v, "inboxId")
                )
            });
        }
        RunsCommand::CancelJob {
            run_id,
            job_id,
            force,
        } => {
            let answer = client.post(
                &format!(
                    "{ADMIN}/runs/{}/jobs/{}/cancel",
                    encode(run_id),
                    encode(job_id)
                ),
                &json!({ "force": force }),
            )?;
            out.value(&answer, |v| {
                format!("job {job_id}: {}", field(v, "outcome"))
            });
        }
    }
    Ok(exit::OK)
}

fn read_stdin_secret() -> Result<String, ClientError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| ClientError::Config(format!("cannot read the secret from stdin: {e}")))?;
    let value = text.trim().to_string();
    if value.is_empty() {
        return Err(ClientError::Config(
            "the secret read from stdin is empty".into(),
        ));
    }
    Ok(value)
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(key.to_string(), value);
    }
}

fn field(value: &Value, key: &str) -> String {
    cell(&value[key])
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Human or JSON output of one command.
struct Output {
    json: bool,
}

impl Output {
    fn pretty(&self, value: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }

    fn value(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            self.pretty(value);
        } else {
            println!("{}", human(value));
        }
    }

    fn done(&self, message: &str) {
        if self.json {
            println!("{}", json!({ "ok": true }));
        } else {
            println!("{message}");
        }
    }

    /// A created secret is shown once, with a warning on stderr.
    fn created_secret(&self, value: &Value, key: &str) {
        if self.json {
            self.pretty(value);
            return;
        }
        println!("id:    {}", field(value, "id"));
        println!("token: {}", field(value, key));
        eprintln!("Store the token now: it is not shown again.");
    }

    /// Lists arrive as `{items: [...]}` pages or bare arrays.
    fn table(&self, value: &Value, columns: &[(&str, &str)]) {
        if self.json {
            self.pretty(value);
            return;
        }
        let items: &[Value] = match value {
            Value::Array(items) => items,
            Value::Object(map) => map
                .get("items")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            _ => &[],
        };
        if items.is_empty() {
            println!("(none)");
            return;
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| columns.iter().map(|(_, key)| cell(&item[*key])).collect())
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, (header, _))| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(header.len())
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            println!("{}", text.trim_end());
        };
        line(columns.iter().map(|(h, _)| *h).collect());
        for row in &rows {
            line(row.iter().map(String::as_str).collect());
        }
    }
}
