import { defineLifecycleSuite } from './lifecycle-suite.ts';
import { processKit } from './substrate-kit.ts';

defineLifecycleSuite(processKit);
