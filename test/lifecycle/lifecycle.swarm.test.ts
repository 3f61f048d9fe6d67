/**
 * The shared lifecycle suite on the swarm substrate (a single-node swarm; scripts/setup-swarm.sh).
 * Without the swarm the kit skips loudly, or fails when CI=true.
 */
import { defineLifecycleSuite } from './lifecycle-suite.ts';
import { swarmKit } from './swarm-kit.ts';

defineLifecycleSuite(swarmKit);
