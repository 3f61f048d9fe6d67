// The console's entry: who is signed in, the hash router (#/, #/m/<id>, #/tenants, #/issue/<ref>)
// and the live-update connection. Pages are modules that render into <main> and return a cleanup.
import { connectEvents, disconnectEvents, signOut, whenSignedOut, whoAmI } from './api.js';
import { fill, h } from './dom.js';
import { renderIssue } from './page-issue.js';
import { renderList } from './page-list.js';
import { renderMigration } from './page-migration.js';
import { renderSignIn } from './page-signin.js';
import { renderTenants } from './page-tenants.js';

const main = document.getElementById('main');
let me = null;
let cleanup = () => {};

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?');
  const params = new URLSearchParams(query);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'm' && parts[1]) return { page: renderMigration, title: `Migration ${parts[1]}`, arg: parts[1], params };
  if (parts[0] === 'tenants') return { page: renderTenants, title: 'Tenants and capacity', params };
  if (parts[0] === 'issue' && parts[1]) return { page: renderIssue, title: `Issue ${parts[1]}`, arg: parts[1], params };
  return { page: renderList, title: 'Migrations', params };
}

function setLive(state) {
  const el = document.getElementById('live-state');
  if (el) el.textContent = `Live updates: ${state}`;
}

async function show() {
  cleanup();
  cleanup = () => {};
  if (!me) return;
  const r = route();
  document.title = `${r.title} · Ferry console`;
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    cleanup = (await r.page(main, { me, arg: r.arg, params: r.params })) ?? (() => {});
  } catch (err) {
    fill(main, h('h1', {}, r.title), h('p', { class: 'alert', role: 'alert' }, err.message));
  }
}

function signedIn(who) {
  me = who;
  document.getElementById('nav').hidden = false;
  document.getElementById('who').hidden = false;
  document.getElementById('who-name').textContent = `Signed in as ${me.name} (${me.role}${me.tenants ? `; tenants ${me.tenants.join(', ')}` : ''})`;
  connectEvents(setLive);
  void show();
}

function signedOut(message) {
  me = null;
  cleanup();
  cleanup = () => {};
  disconnectEvents();
  setLive('not connected');
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  document.title = 'Sign in · Ferry console';
  renderSignIn(main, { message, onSignedIn: signedIn });
}

whenSignedOut(() => {
  if (me) signedOut('Your session has ended (idle for 12 hours, signed out elsewhere, or the server restarted). Sign in again.');
});

document.getElementById('sign-out').addEventListener('click', async () => {
  try {
    await signOut();
  } finally {
    signedOut('You are signed out.');
  }
});

window.addEventListener('hashchange', () => {
  void show().then(() => main.focus());
});

const who = await whoAmI().catch(() => null);
if (who) signedIn(who);
else signedOut(null);
