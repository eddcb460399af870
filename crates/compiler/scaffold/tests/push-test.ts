import { fixture, push } from '@kici-dev/sdk';

export const push__BRANCH_PASCAL__ = fixture('push-__BRANCH__', { event: push({ branches: ['__BRANCH__'] }) });
