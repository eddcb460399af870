import { workflow, job, step, push, pr } from '@kici-dev/sdk';

// The project's own pipeline: the same checks as .ci/run, split so that a failing lint
// does not hide failing tests.
const lint = job('lint', {
  runsOn: 'kici:os:linux',
  steps: [
    step('fmt', async ({ $ }) => {
      await $`cargo fmt --all -- --check`;
    }),
    step('clippy', async ({ $ }) => {
      await $`cargo clippy --workspace --all-targets -- -D warnings`;
    }),
  ],
});

const test = job('test', {
  runsOn: 'kici:os:linux',
  needs: [lint],
  steps: [
    step('test', async ({ $ }) => {
      await $`cargo test --workspace`;
    }),
  ],
});

export default workflow('ci', {
  description: 'Format, lint and test the workspace',
  on: [push({ branches: ['main'] }), pr()],
  jobs: [lint, test],
});
