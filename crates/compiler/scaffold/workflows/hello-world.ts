import { workflow, job, step, push } from '@kici-dev/sdk';

const greet = job('greet', {
  runsOn: 'kici:os:linux',
  steps: [
    step('say-hello', async ({ $, log }) => {
      log.info('Hello from KiCI');
      await $`echo "Hello, World!"`;
    }),
  ],
});

export const helloWorldWorkflow = workflow('hello-world', {
  description: 'Greets on every push',
  on: push(),
  jobs: [greet],
});
