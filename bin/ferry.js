#!/usr/bin/env node
// The `ferry` command. Ferry ships as TypeScript and runs through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
