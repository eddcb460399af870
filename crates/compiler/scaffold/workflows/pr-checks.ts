import { workflow, job, step, pr, rule, skip } from '@kici-dev/sdk';

const lint = job('lint', {
  runsOn: 'kici:os:linux',
  steps: [
    step('run-linter', async ({ $ }) => {
      await $`echo "replace with your linter"`;
    }),
  ],
});

const test = job('test', {
  runsOn: 'kici:os:linux',
  needs: [lint],
  steps: [
    step('run-tests', async ({ $ }) => {
      await $`echo "replace with your tests"`;
    }),
  ],
});

export const prChecksWorkflow = workflow('pr-checks', {
  on: pr({ target: '__DEFAULT_BRANCH__', paths: ['src/**'] }),
  rules: [
    skip('skip-draft-prs', (ctx) => ctx.event.payload?.pull_request?.draft === true),
    rule('require-src-changes', (ctx) => ctx.changedFiles.some((f) => f.startsWith('src/'))),
  ],
  jobs: [lint, test],
});
