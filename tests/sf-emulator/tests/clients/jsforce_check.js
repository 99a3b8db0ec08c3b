// Real-client check with jsforce: autoFetch over several pages, scanAll, and a
// transparent token refresh after /__emulator/tokens/expire. Prints one JSON line.
const [modDir, url, accessToken, refreshToken, clientId, clientSecret, controlKey] = process.argv.slice(2);
const jsforce = require(modDir + '/node_modules/jsforce');

function collect(conn, soql, scanAll) {
  return new Promise((resolve, reject) => {
    const records = [];
    conn.query(soql, { scanAll })
      .on('record', (r) => records.push(r))
      .on('end', () => resolve(records))
      .on('error', reject)
      .run({ autoFetch: true, maxFetch: 1000000 });
  });
}

(async () => {
  const conn = new jsforce.Connection({
    oauth2: { clientId, clientSecret, loginUrl: url, redirectUri: 'http://127.0.0.1:1/cb' },
    instanceUrl: url, accessToken, refreshToken, version: '62.0',
  });
  let refreshes = 0;
  conn.on('refresh', () => { refreshes += 1; });
  const live = await collect(conn, 'SELECT Id, Subject, SystemModstamp FROM Case ORDER BY SystemModstamp, Id', false);
  const all = await collect(conn, 'SELECT Id, IsDeleted FROM Case', true);
  const expired = await fetch(url + '/__emulator/tokens/expire', { method: 'POST', headers: { 'X-Emulator-Key': controlKey } });
  if (!expired.ok) throw new Error('expire failed: ' + expired.status);
  const after = await conn.query('SELECT COUNT() FROM Case');
  console.log(JSON.stringify({
    live: live.length, liveIds: live.map((r) => r.Id), subjects: live.slice(0, 50).map((r) => r.Subject),
    all: all.length, deleted: all.filter((r) => r.IsDeleted).length,
    countAfterRefresh: after.totalSize, refreshes,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
