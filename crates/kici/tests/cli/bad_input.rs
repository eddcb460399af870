//! Bad input never panics: each case is a clear error with file and line and exit 1
//! (validation.md §2, issue 2 acceptance), and no lock is written.

use std::time::Duration;

use crate::support::{CI_WORKFLOW, Output, Repo, position_of, push_workflow};

/// A repository with `ci.ts` (valid) and `.kici/workflows/<name>` = `source`, compiled.
fn compile_with(name: &str, source: impl AsRef<[u8]>) -> (Repo, Output) {
    let repo = Repo::new();
    repo.write(".kici/workflows/ci.ts", CI_WORKFLOW);
    repo.write(&format!(".kici/workflows/{name}"), source);
    repo.commit("bad input");
    let out = repo.kici(&["compile"]);
    (repo, out)
}

/// Exit 1, the code and message on stderr, no lock on disk, the failure summary line.
#[track_caller]
fn assert_error(repo: &Repo, out: &Output, code: &str, message: &str) {
    out.expect(1)
        .stderr_has(&format!("error [{code}]"))
        .stderr_has(message)
        .stderr_has("error(s)");
    assert!(
        !repo.exists(".kici/kici.lock.json"),
        "a failed compile wrote the lock\n{}",
        out.dump()
    );
}

#[track_caller]
fn assert_position(out: &Output, file: &str, expected: (u32, u32)) {
    assert_eq!(
        position_of(&out.stderr, file),
        Some(expected),
        "wrong position for {file}\n{}",
        out.dump()
    );
}

#[test]
fn syntax_error_is_e002_at_the_real_line_and_column() {
    let (repo, out) = compile_with(
        "broken.ts",
        "import { workflow } from '@kici-dev/sdk';\n\nconst x: number = 1;\nconst y = ;\n",
    );
    assert_error(&repo, &out, "E002", "Syntax error:");
    assert_position(&out, ".kici/workflows/broken.ts", (4, 11));
    // The other, valid file is not blamed for its neighbour's failure.
    assert!(
        !out.stderr.contains("ci.ts"),
        "a valid file got a diagnostic\n{}",
        out.dump()
    );
}

#[test]
fn a_failed_load_does_not_leak_into_the_next_file() {
    // "a-broken.ts" sorts before "ci.ts"; QuickJS must not report the first failure again.
    let repo = Repo::new();
    repo.write(".kici/workflows/a-broken.ts", "const = ;\n");
    repo.write(".kici/workflows/ci.ts", CI_WORKFLOW);
    repo.write(".kici/workflows/d.ts", push_workflow("d"));
    let out = repo.kici(&["compile"]);
    out.expect(1).stderr_has("1 error(s)");
    assert!(!out.stderr.contains("ci.ts"), "{}", out.dump());
}

#[test]
fn throw_at_load_is_e003_at_the_throwing_line() {
    let (repo, out) = compile_with(
        "throws.ts",
        "import { workflow } from '@kici-dev/sdk';\n\nfunction fail(): never {\n  throw new Error('boom at load');\n}\nfail();\n",
    );
    assert_error(
        &repo,
        &out,
        "E003",
        "Failed to load workflow file module: boom at load",
    );
    let (line, _) = position_of(&out.stderr, ".kici/workflows/throws.ts").expect("a position");
    assert_eq!(line, 4, "{}", out.dump());
}

#[test]
fn factory_validation_error_is_e003_at_the_call() {
    let (repo, out) = compile_with(
        "factory.ts",
        "import { workflow, job } from '@kici-dev/sdk';\n\nexport default workflow('f', {\n  jobs: [\n    job('j', { steps: [] }),\n  ],\n});\n",
    );
    assert_error(
        &repo,
        &out,
        "E003",
        "one of runsOn or runsOnAll is required",
    );
    let (line, _) = position_of(&out.stderr, ".kici/workflows/factory.ts").expect("a position");
    assert_eq!(line, 5, "{}", out.dump());
}

#[test]
fn endless_loop_at_top_level_is_e006_within_the_deadline() {
    let repo = Repo::new();
    repo.write(".kici/workflows/ci.ts", CI_WORKFLOW);
    repo.write(
        ".kici/workflows/spin.ts",
        "import { workflow } from '@kici-dev/sdk';\n\nwhile (true) {}\n",
    );
    let out = repo
        .cmd(&["compile"])
        .env("KICI_LOAD_TIMEOUT_MS", "300")
        .timeout(Duration::from_secs(30))
        .run();
    assert_error(
        &repo,
        &out,
        "E006",
        "Evaluating .kici/workflows/spin.ts exceeded the time limit",
    );
    assert_position(&out, ".kici/workflows/spin.ts", (1, 1));
    assert!(
        out.elapsed < Duration::from_secs(20),
        "the load deadline was not enforced: {:?}",
        out.elapsed
    );
}

#[test]
fn endless_async_loop_is_e006_too() {
    let repo = Repo::new();
    repo.write(
        ".kici/workflows/spin.ts",
        "await new Promise<void>(() => { for (;;) {} });\nexport {};\n",
    );
    let out = repo
        .cmd(&["compile"])
        .env("KICI_LOAD_TIMEOUT_MS", "300")
        .timeout(Duration::from_secs(30))
        .run();
    assert_error(&repo, &out, "E006", "exceeded the time limit");
}

#[test]
fn never_settling_top_level_await_is_an_error_not_a_hang() {
    let repo = Repo::new();
    repo.write(
        ".kici/workflows/wait.ts",
        "await new Promise(() => {});\nexport {};\n",
    );
    let out = repo
        .cmd(&["compile"])
        .env("KICI_LOAD_TIMEOUT_MS", "300")
        .timeout(Duration::from_secs(30))
        .run();
    out.expect(1).stderr_has(".kici/workflows/wait.ts:");
}

#[test]
fn missing_import_is_e005_naming_specifier_and_importer() {
    let (repo, out) = compile_with(
        "imports.ts",
        "import { workflow } from '@kici-dev/sdk';\nimport { helper } from './lib/missing.ts';\n\nexport default helper;\n",
    );
    assert_error(
        &repo,
        &out,
        "E005",
        "Cannot find module \"./lib/missing.ts\" imported from .kici/workflows/imports.ts",
    );
    let (line, _) = position_of(&out.stderr, ".kici/workflows/imports.ts").expect("a position");
    assert_eq!(
        line,
        2,
        "E005 points at the import statement\n{}",
        out.dump()
    );
}

#[test]
fn missing_import_in_a_helper_module_names_the_helper() {
    let repo = Repo::new();
    repo.write(
        ".kici/lib/helper.ts",
        "// helper\nimport { gone } from './gone.ts';\nexport const branch = gone;\n",
    );
    repo.write(
        ".kici/workflows/uses.ts",
        "import { workflow, job, push } from '@kici-dev/sdk';\nimport { branch } from '../lib/helper.ts';\n\nexport default workflow('uses', { on: push({ branches: [branch] }), jobs: [job('a', { runsOn: 'x', steps: [] })] });\n",
    );
    let out = repo.kici(&["compile"]);
    assert_error(
        &repo,
        &out,
        "E005",
        "Cannot find module \"./gone.ts\" imported from .kici/lib/helper.ts",
    );
    assert_position(&out, ".kici/lib/helper.ts", (2, 22));
}

#[test]
fn bare_npm_import_is_e005_with_the_npm_message() {
    let (repo, out) = compile_with(
        "npm.ts",
        "import { workflow } from '@kici-dev/sdk';\n\nimport _ from 'lodash';\nexport const x = _;\n",
    );
    assert_error(
        &repo,
        &out,
        "E005",
        "Cannot import \"lodash\": npm packages are not supported in KiCI workflows",
    );
    out.stderr_has("Import from \"@kici-dev/sdk\" or a relative file.");
    assert_position(&out, ".kici/workflows/npm.ts", (3, 15));
}

#[test]
fn zod_import_gets_the_sdk_hint() {
    let (repo, out) = compile_with(
        "zod.ts",
        "import { z } from 'zod';\nexport const schema = z.string();\n",
    );
    assert_error(&repo, &out, "E005", "Cannot import \"zod\"");
    out.stderr_has("import { z } from \"@kici-dev/sdk\"");
}

#[test]
fn unavailable_node_builtin_is_e005_with_a_hint() {
    let (repo, out) = compile_with(
        "cp.ts",
        "import { exec } from 'node:child_process';\nexport const run = exec;\n",
    );
    assert_error(
        &repo,
        &out,
        "E005",
        "Module \"node:child_process\" is not available in KiCI workflows",
    );
    out.stderr_has("ctx.$");
}

#[test]
fn default_export_that_is_not_a_workflow_is_e004() {
    let (repo, out) = compile_with(
        "notwf.ts",
        "import { job } from '@kici-dev/sdk';\n\nexport default job('j', { runsOn: 'x', steps: [] });\n",
    );
    assert_error(&repo, &out, "E004", "Config does not export any workflows");
    assert_position(&out, ".kici/workflows/notwf.ts", (1, 1));
    out.stderr_has(".kici/lib/");
}

#[test]
fn no_workflow_in_any_file_is_e004() {
    let repo = Repo::new();
    repo.write(".kici/workflows/a.ts", "export const answer = 42;\n");
    let out = repo.kici(&["compile"]);
    assert_error(&repo, &out, "E004", "Config does not export any workflows");
}

#[test]
fn empty_workflows_folder_is_e001() {
    let repo = Repo::new();
    std::fs::create_dir_all(repo.file(".kici/workflows")).unwrap();
    repo.write(".kici/workflows/README.md", "not a workflow\n");
    repo.write(".kici/workflows/types.d.ts", "export {};\n");
    let out = repo.kici(&["compile"]);
    assert_error(
        &repo,
        &out,
        "E001",
        "No workflow files found in .kici/workflows/",
    );
    out.stderr_has("Suggestion: Add a workflow file such as .kici/workflows/ci.ts");
}

#[test]
fn missing_workflows_dir_is_e001_with_the_absolute_path() {
    let repo = Repo::new();
    let out = repo.kici(&["compile"]);
    let expected = format!(
        ".kici/workflows/ directory not found: {}",
        repo.file(".kici/workflows").display()
    );
    assert_error(&repo, &out, "E001", &expected);
    out.stderr_has("Run \"kici init\"");
    assert!(
        !repo.exists(".kici"),
        "compile created .kici/\n{}",
        out.dump()
    );
}

#[test]
fn workflows_path_that_is_a_file_is_e001() {
    let repo = Repo::new();
    repo.write(".kici/workflows", "oops");
    let out = repo.kici(&["compile"]);
    out.expect(1)
        .stderr_has("error [E001]")
        .stderr_has(".kici/workflows/ is not a directory");
}

#[test]
fn five_megabyte_workflow_compiles_fast() {
    let mut source = String::from(
        "import { workflow, job, step, push } from '@kici-dev/sdk';\n\n// filler follows\n",
    );
    let mut i = 0;
    while source.len() < 5 * 1024 * 1024 {
        source.push_str(&format!(
            "const filler{i} = {{ index: {i}, text: 'lorem ipsum dolor sit amet' }}; // note {i}\n"
        ));
        i += 1;
    }
    let trailer_line = source.lines().count() + 1;
    source.push_str(
        "export default workflow('big', {\n  on: push(),\n  jobs: [job('a', { runsOn: 'x', steps: [step('s', async () => {})] })],\n});\n",
    );
    let repo = Repo::new();
    repo.write(".kici/workflows/big.ts", &source);
    let out = repo.kici(&["compile"]);
    out.expect(0).stderr_has("(1 workflow)");
    assert!(
        out.elapsed < Duration::from_secs(30),
        "5 MB took {:?}",
        out.elapsed
    );
    // The step's sourceLocation is the real line near the end of the file.
    let lock: serde_json::Value = serde_json::from_str(&repo.read(".kici/kici.lock.json")).unwrap();
    let line = lock["workflows"][0]["jobs"][0]["steps"][0]["sourceLocation"]["line"].as_u64();
    assert_eq!(line, Some(trailer_line as u64 + 2), "{lock:#}");
}

#[test]
fn five_megabyte_file_with_an_error_at_the_end_fails_fast() {
    let mut source = String::from("// a very large file\n");
    while source.len() < 5 * 1024 * 1024 {
        source.push_str("export const a_rather_long_name_that_fills_the_line_up = [1, 2, 3];\n");
    }
    let last = source.lines().count() + 1;
    source.push_str("const broken = (;\n");
    let (repo, out) = compile_with("huge.ts", &source);
    assert_error(&repo, &out, "E002", "Syntax error");
    let (line, _) = position_of(&out.stderr, ".kici/workflows/huge.ts").expect("a position");
    assert_eq!(line as usize, last, "{}", out.dump());
    assert!(out.elapsed < Duration::from_secs(30), "{:?}", out.elapsed);
}

#[test]
fn huge_single_line_literal_does_not_blow_up() {
    // One 5 MB line: position mapping must not be quadratic in the line length.
    let mut source =
        String::from("import { workflow, job, push } from '@kici-dev/sdk';\nconst data = [");
    while source.len() < 5 * 1024 * 1024 {
        source.push_str("{ a: 1, b: 'x' }, ");
    }
    source.push_str("];\nexport default workflow('one-line', { on: push(), jobs: [job('a', { runsOn: 'x', steps: [] })] });\nexport const count = data.length;\n");
    let repo = Repo::new();
    repo.write(".kici/workflows/line.ts", &source);
    let out = repo.kici(&["compile"]);
    out.expect(0);
    assert!(out.elapsed < Duration::from_secs(30), "{:?}", out.elapsed);
}

#[test]
fn deeply_nested_expression_is_an_error_not_a_crash() {
    let depth = 100_000;
    let source = format!(
        "export const deep = {}1{};\n",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    let (_repo, out) = compile_with("deep.ts", source);
    out.expect(1)
        .stderr_has(".kici/workflows/deep.ts:")
        .stderr_has("[E002]");
    // Nesting just under the limit must not crash either (it may compile or fail cleanly).
    let depth = 900;
    let source = format!(
        "export const deep = {}1{};\n",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    let (_repo, out) = compile_with("deep.ts", source);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn invalid_utf8_names_the_file() {
    let mut bytes = b"import { workflow } from '@kici-dev/sdk';\n// caf".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x80]);
    bytes.extend_from_slice(b"\nexport default 1;\n");
    let (repo, out) = compile_with("latin.ts", bytes);
    out.expect(1)
        .stderr_has(".kici/workflows/latin.ts:")
        .stderr_has("not valid UTF-8");
    assert_position(&out, ".kici/workflows/latin.ts", (2, 7));
    assert!(!repo.exists(".kici/kici.lock.json"));
}

#[test]
fn invalid_utf8_in_an_imported_module_names_that_module() {
    let repo = Repo::new();
    repo.write(".kici/lib/bad.ts", [b'/', b'/', 0xc3, 0x28, b'\n']);
    repo.write(
        ".kici/workflows/w.ts",
        "import '../lib/bad.ts';\nimport { workflow, job, push } from '@kici-dev/sdk';\nexport default workflow('w', { on: push(), jobs: [job('a', { runsOn: 'x', steps: [] })] });\n",
    );
    let out = repo.kici(&["compile"]);
    out.expect(1)
        .stderr_has(".kici/lib/bad.ts")
        .stderr_has("not valid UTF-8");
}

#[test]
fn json_import_is_a_module_whose_default_export_is_the_value() {
    let repo = Repo::new();
    repo.write(
        ".kici/config.json",
        r#"{ "branches": ["main", "release/*"] }"#,
    );
    repo.write(
        ".kici/workflows/cfg.ts",
        "import { workflow, job, push } from '@kici-dev/sdk';\nimport config from '../config.json' with { type: 'json' };\n\nexport default workflow('cfg', {\n  on: push({ branches: config.branches }),\n  jobs: [job('a', { runsOn: 'x', steps: [] })],\n});\n",
    );
    let out = repo.kici(&["compile"]);
    out.expect(0);
    let lock = repo.read(".kici/kici.lock.json");
    assert!(lock.contains("\"release/*\""), "{lock}");
    // The JSON file is part of the workflow's inputs (hashed with it).
    assert!(lock.contains("\".kici/config.json\""), "{lock}");
}

#[test]
fn invalid_json_import_is_an_error_at_its_position() {
    let repo = Repo::new();
    repo.write(".kici/config.json", "{\n  \"a\": 1,\n  oops\n}\n");
    repo.write(
        ".kici/workflows/cfg.ts",
        "import config from '../config.json';\nexport const c = config;\n",
    );
    let out = repo.kici(&["compile"]);
    out.expect(1)
        .stderr_has("error [E005]")
        .stderr_has(".kici/config.json:3:");
}

#[test]
fn symlink_loop_is_e001_failed_to_read() {
    let repo = Repo::new();
    repo.write(".kici/workflows/ci.ts", CI_WORKFLOW);
    std::os::unix::fs::symlink("loop.ts", repo.file(".kici/workflows/loop.ts")).unwrap();
    std::os::unix::fs::symlink("nowhere.ts", repo.file(".kici/workflows/dangling.ts")).unwrap();
    let out = repo.kici(&["compile"]);
    out.expect(1)
        .stderr_has("error [E001]: Failed to read .kici/workflows/loop.ts:")
        .stderr_has("error [E001]: Failed to read .kici/workflows/dangling.ts:")
        .stderr_has("2 error(s)");
}

#[test]
fn symlinked_workflow_file_compiles() {
    let repo = Repo::new();
    repo.write(".kici/shared/real.ts", push_workflow("linked"));
    std::fs::create_dir_all(repo.file(".kici/workflows")).unwrap();
    std::os::unix::fs::symlink("../shared/real.ts", repo.file(".kici/workflows/linked.ts"))
        .unwrap();
    repo.kici(&["compile"]).expect(0);
    assert!(repo.read(".kici/kici.lock.json").contains("\"linked\""));
}

#[test]
fn unreadable_workflow_file_is_e001() {
    use std::os::unix::fs::PermissionsExt;
    let repo = Repo::new();
    repo.write(".kici/workflows/ci.ts", CI_WORKFLOW);
    repo.write(".kici/workflows/secret.ts", push_workflow("secret"));
    let path = repo.file(".kici/workflows/secret.ts");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&path).is_ok() {
        // Running as root: permissions do not apply; nothing to test here.
        return;
    }
    let out = repo.kici(&["compile"]);
    out.expect(1)
        .stderr_has("error [E001]: Failed to read .kici/workflows/secret.ts:");
}

#[test]
fn import_outside_the_repository_is_e005() {
    let (repo, out) = compile_with(
        "escape.ts",
        "import x from '../../../../../../../../etc/hostname.json';\nexport const y = x;\n",
    );
    out.expect(1).stderr_has("error [E005]");
    assert!(!repo.exists(".kici/kici.lock.json"));
}

#[test]
fn several_broken_files_are_all_reported() {
    let repo = Repo::new();
    repo.write(".kici/workflows/a.ts", "const = 1;\n");
    repo.write(".kici/workflows/b.ts", "throw new Error('b fails');\n");
    repo.write(".kici/workflows/c.ts", "import 'left-pad';\n");
    repo.write(".kici/workflows/d.ts", "export default 5;\n");
    let out = repo.kici(&["compile"]);
    out.expect(1)
        .stderr_has(".kici/workflows/a.ts:1:")
        .stderr_has("[E002]")
        .stderr_has("[E003]")
        .stderr_has("[E005]")
        .stderr_has("[E004]")
        .stderr_has("4 error(s)");
}

#[test]
fn bad_input_through_preview_and_json_is_clean_too() {
    let (repo, _) = compile_with("broken.ts", "const y = ;\n");
    let out = repo.kici(&["preview", "push"]);
    out.expect(1).stderr_has(".kici/workflows/broken.ts:1:11");
    let out = repo.kici(&["compile", "--json"]);
    out.expect(1);
    let body = out.json();
    assert_eq!(body["ok"], false);
    assert_eq!(body["diagnostics"][0]["code"], "E002");
    assert_eq!(body["diagnostics"][0]["line"], 1);
    assert_eq!(body["diagnostics"][0]["column"], 11);
}

#[test]
fn throwing_a_non_error_value_reads_like_javascript() {
    for (source, expected) in [
        ("throw 42;\n", "module: 42\n"),
        ("throw null;\n", "module: null\n"),
        ("throw undefined;\n", "module: undefined\n"),
        ("throw 'plain text';\n", "module: plain text\n"),
        ("throw {};\n", "module: [object Object]\n"),
        (
            "throw { get message() { throw new Error('again'); } };\n",
            "module: [object Object]\n",
        ),
    ] {
        let (repo, out) = compile_with("throws.ts", source);
        assert_error(&repo, &out, "E003", expected);
        // The file after it (ci.ts) is not blamed for a leftover exception.
        assert!(!out.stderr.contains("ci.ts"), "{}", out.dump());
    }
}

#[test]
fn syntax_quickjs_rejects_after_stripping_is_e002_too() {
    // oxc accepts decorators and defers regex validation; QuickJS refuses both at compile time.
    let (repo, out) = compile_with(
        "decorated.ts",
        "// a comment\n\n@sealed\nclass Service {}\nexport const s = Service;\n",
    );
    assert_error(&repo, &out, "E002", "Syntax error:");
    assert_position(&out, ".kici/workflows/decorated.ts", (3, 1));
    let (repo, out) = compile_with("regex.ts", "export const re = /(/;\n");
    assert_error(&repo, &out, "E002", "Syntax error:");
    // A SyntaxError thrown by running code stays E003.
    let (repo, out) = compile_with("json.ts", "\nJSON.parse('{');\n");
    assert_error(
        &repo,
        &out,
        "E003",
        "Failed to load workflow file module: SyntaxError:",
    );
    let (line, _) = position_of(&out.stderr, ".kici/workflows/json.ts").expect("a position");
    assert_eq!(line, 2, "{}", out.dump());
}

#[test]
fn runaway_memory_and_recursion_at_load_are_clean_errors() {
    let (repo, out) = compile_with(
        "hog.ts",
        "const hoard: number[][] = [];\nwhile (true) hoard.push(new Array(1e6).fill(1));\n",
    );
    assert_error(&repo, &out, "E006", "exceeded the memory limit");
    let (repo, out) = compile_with(
        "recurse.ts",
        "function down(n: number): number {\n  return down(n + 1) + 1;\n}\ndown(0);\n",
    );
    assert_error(&repo, &out, "E003", "Maximum call stack size exceeded");
}
