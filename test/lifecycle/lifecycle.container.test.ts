import { containerKit } from './container-kit.ts';
import { defineLifecycleSuite } from './lifecycle-suite.ts';

defineLifecycleSuite(containerKit);
