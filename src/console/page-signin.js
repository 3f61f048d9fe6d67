// Sign-in: the token is sent once to POST /v1/session and forgotten; the server answers with an
// HttpOnly session cookie and a CSRF token for this tab.
import { ApiError, signIn } from './api.js';
import { fill, h } from './dom.js';

export function renderSignIn(main, { message, onSignedIn }) {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const status = h('div', { id: 'signin-status' });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin', novalidate: true },
    h('label', { for: 'token' }, 'Token'),
    input,
    h(
      'p',
      { class: 'muted', id: 'token-help' },
      'A Ferry API token (the admin token of an embedded install is in <data-dir>/token). It is not stored by this page.',
    ),
    button,
  );
  input.setAttribute('aria-describedby', 'token-help');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) {
      fill(status, h('p', { class: 'alert', role: 'alert' }, 'Enter a token.'));
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const me = await signIn(token);
      input.value = '';
      onSignedIn(me);
    } catch (err) {
      const text =
        err instanceof ApiError && err.status === 401
          ? `Sign-in failed: this token is not known to this Ferry. (${err.message})`
          : `Sign-in failed: ${err.message}`;
      fill(status, h('p', { class: 'alert', role: 'alert' }, text));
      input.select();
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  fill(main, h('h1', {}, 'Sign in to Ferry'), message ? h('p', { role: 'status' }, message) : null, form, status);
  input.focus();
}
