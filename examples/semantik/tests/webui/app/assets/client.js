// The requests Semantik's web app makes (upstream `apps/webui-react/src/services/api`), from the
// page's own origin with relative URLs, keeping its tokens in localStorage under
// `auth-storage` as the app's zustand store does. Exposed as `window.semantik` for the script.
const storageKey = 'auth-storage';

const stored = () => JSON.parse(localStorage.getItem(storageKey) || 'null')?.state ?? null;
const store = (state) => localStorage.setItem(storageKey, JSON.stringify({ state, version: 0 }));

async function call(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  const bearer = token ?? stored()?.token;
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: response.status, body: json };
}

async function signIn(username, password) {
  const login = await call('POST', '/api/auth/login', { body: { username, password }, token: '' });
  if (login.status !== 200) return login;
  const { access_token: token, refresh_token: refreshToken } = login.body;
  const me = await call('GET', '/api/auth/me', { token });
  store({ token, refreshToken, user: me.body });
  return me;
}

// Sign-up, which the app follows with a sign-in.
async function signUp(fields) {
  const registered = await call('POST', '/api/auth/register', { body: fields, token: '' });
  if (registered.status !== 200 && registered.status !== 201) return registered;
  return signIn(fields.username, fields.password);
}

// Sign-out posts the refresh token, then forgets both tokens whatever the answer.
async function signOut() {
  const state = stored();
  const answer = await call('POST', '/api/auth/logout', { body: { refresh_token: state?.refreshToken } });
  localStorage.removeItem(storageKey);
  return answer;
}

// The operations feed: the access token rides in the `access_token.<token>` subprotocol.
function operations(token, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws/operations`, [`access_token.${token}`]);
    const received = [];
    const timer = setTimeout(() => { socket.close(); resolve({ timeout: true, received }); }, timeoutMs);
    socket.onopen = () => socket.send(JSON.stringify({ type: 'ping' }));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      received.push(message.type);
      if (message.type !== 'pong') return;
      clearTimeout(timer);
      resolve({ protocol: socket.protocol, received });
      socket.close();
    };
    socket.onclose = (event) => { clearTimeout(timer); resolve({ closed: event.code, received }); };
  });
}

window.semantik = {
  stored,
  call,
  signUp,
  signIn,
  signOut,
  operations,
  keys: {
    list: () => call('GET', '/api/v2/api-keys'),
    create: (name) => call('POST', '/api/v2/api-keys', { body: { name } }),
    revoke: (id) => call('PATCH', `/api/v2/api-keys/${id}`, { body: { is_active: false } }),
  },
};
document.getElementById('status').textContent = 'ready';
