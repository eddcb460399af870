//! Secret-leak suite: no emitted text contains the secret, in any encoding.

use kici_executor::Status;

use crate::support::{Workspace, run};

const SECRET: &str = "s3cr3t-V@lue/with space&\"quote\"\nsecond-line-xyz";

#[test]
fn secrets_are_masked_in_every_encoding_and_never_in_env() {
    let ws = Workspace::new(
        r#"import { workflow, job, step, push } from '@kici-dev/sdk';
export default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', steps: [
  step('leak', async ({ $, secrets, log }) => {
    const s = await secrets.get('TOKEN');
    const inEnv = (await $`printenv TOKEN || echo absent`).stdout.trim();
    log.info(`env before expose: ${inEnv}`);
    log.info(s);
    console.log(Buffer.from(s).toString('base64'));
    console.log(encodeURIComponent(s));
    console.log(JSON.stringify({ s }));
    await $`printf '%s\n' ${s}`;
    secrets.expose('TOKEN');
    await $`echo "exposed: $TOKEN"`;
    throw new Error(`failing with ${s}`);
  }),
] })] });
"#,
    );
    let mut req = ws.request("w", "j");
    req.secrets.insert("TOKEN".into(), SECRET.into());
    let (result, rec) = run(req);
    assert_eq!(result.status, Status::Failed);
    let lines = rec.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("env before expose: absent")),
        "{lines:#?}"
    );
    let mut forms = vec![
        SECRET.to_string(),
        "s3cr3t-V@lue/with space".to_string(),
        "second-line-xyz".to_string(),
    ];
    use base64::Engine;
    forms.push(base64::engine::general_purpose::STANDARD.encode(SECRET));
    forms.push("s3cr3t-V%40lue%2Fwith%20space".to_string());
    forms.push("\\\"quote\\\"\\nsecond".to_string());
    let everything = format!("{}\n{:?}", rec.all_text(), result);
    for form in &forms {
        assert!(
            !everything.contains(form.as_str()),
            "leaked {form:?}:\n{lines:#?}"
        );
    }
    assert!(everything.contains("***"));
}
