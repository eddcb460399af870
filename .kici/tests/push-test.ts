import { fixture, push } from '@kici-dev/sdk';

export const pushMain = fixture('push-main', { event: push({ branches: ['main'] }) });
