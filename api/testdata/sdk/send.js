// send.js sends track, identify, page, screen, group and alias calls through
// the official Segment, RudderStack and PostHog node SDKs to a duckgate, then
// flushes each SDK. Usage: node send.js <host, e.g. http://127.0.0.1:8080> <ingest key>
//
// Every event carries a known messageId (uuid for PostHog) and timestamp so
// that api/track_sdk_test.go can find it and check its columns. Any SDK error
// or non-2xx answer makes the script exit 1, naming it; "ok <sdk>" is printed
// per SDK that flushed.
'use strict';

const { Analytics } = require('@segment/analytics-node');
const { PostHog } = require('posthog-node');
const RudderAnalytics = require('@rudderstack/rudder-sdk-node');

const [host, key] = process.argv.slice(2);
if (!host || !key) {
  console.error('usage: node send.js <host> <key>');
  process.exit(2);
}
const ts = new Date('2024-05-06T07:08:09.123Z');

async function segment() {
  const errors = [];
  const a = new Analytics({ writeKey: key, host, flushAt: 100, flushInterval: 60000, maxRetries: 2 });
  a.on('error', (err) => errors.push(err));
  a.on('http_request', (r) => {
    if (r.status < 200 || r.status > 299) errors.push(new Error(`segment: HTTP ${r.status}`));
  });
  a.track({ messageId: 'seg-track-1', userId: 'seg-u1', event: 'Order Completed', timestamp: ts,
    properties: { revenue: 12.5, items: 3, coupon: 'SPRING', paid: true, tags: ['a', 'b'] } });
  a.identify({ messageId: 'seg-identify-1', userId: 'seg-u1', timestamp: ts,
    traits: { email: 'ann@example.com', plan: 'pro', age: 31 } });
  a.page({ messageId: 'seg-page-1', userId: 'seg-u1', timestamp: ts, name: 'Home', category: 'Docs',
    properties: { url: 'https://example.com/', path: '/' } });
  a.screen({ messageId: 'seg-screen-1', userId: 'seg-u1', timestamp: ts, name: 'Settings',
    properties: { theme: 'dark' } });
  a.group({ messageId: 'seg-group-1', userId: 'seg-u1', timestamp: ts, groupId: 'seg-g1',
    traits: { name: 'Acme', employees: 50 } });
  a.alias({ messageId: 'seg-alias-1', userId: 'seg-u1', previousId: 'seg-anon-1', timestamp: ts });
  await a.closeAndFlush({ timeout: 20000 });
  if (errors.length) throw new Error('segment: ' + errors.map(String).join('; '));
}

async function rudder() {
  const errors = [];
  const r = new RudderAnalytics(key, { dataPlaneUrl: host, flushAt: 100, flushInterval: 60000, retryCount: 0,
    errorHandler: (err) => errors.push(err), logLevel: 'error' });
  const cb = (err) => { if (err) errors.push(err); };
  r.track({ messageId: 'rs-track-1', userId: 'rs-u1', event: 'Order Completed', originalTimestamp: ts,
    properties: { revenue: 7.25, items: 1, coupon: 'RS', paid: false, tags: ['c'] } }, cb);
  r.identify({ messageId: 'rs-identify-1', userId: 'rs-u1', originalTimestamp: ts,
    traits: { email: 'rob@example.com', plan: 'free', age: 44 } }, cb);
  r.page({ messageId: 'rs-page-1', userId: 'rs-u1', originalTimestamp: ts, name: 'Pricing', category: 'Docs',
    properties: { url: 'https://example.com/pricing', path: '/pricing' } }, cb);
  r.screen({ messageId: 'rs-screen-1', userId: 'rs-u1', originalTimestamp: ts, name: 'Profile',
    properties: { theme: 'light' } }, cb);
  r.group({ messageId: 'rs-group-1', userId: 'rs-u1', originalTimestamp: ts, groupId: 'rs-g1',
    traits: { name: 'Globex', employees: 7 } }, cb);
  r.alias({ messageId: 'rs-alias-1', userId: 'rs-u1', previousId: 'rs-anon-1', originalTimestamp: ts }, cb);
  // The first call flushes at once (the SDK's "flushed" flag); flush the rest.
  await r.flush();
  await r.flush();
  if (errors.length) throw new Error('rudderstack: ' + errors.map(String).join('; '));
}

async function posthog() {
  const errors = [];
  const ph = new PostHog(key, { host, flushAt: 100, flushInterval: 60000, fetchRetryCount: 0, disableGeoip: true });
  ph.on('error', (err) => errors.push(err));
  ph.capture({ uuid: '01900000-0000-7000-8000-000000000001', distinctId: 'ph-u1', event: 'Order Completed', timestamp: ts,
    properties: { revenue: 3.5, items: 2, coupon: 'PH', paid: true, tags: ['d'] } });
  ph.identify({ distinctId: 'ph-u1', properties: { $set: { email: 'pat@example.com', plan: 'team' }, $set_once: { age: 27, plan: 'never' } } });
  ph.capture({ uuid: '01900000-0000-7000-8000-000000000003', distinctId: 'ph-u1', event: '$pageview', timestamp: ts,
    properties: { $current_url: 'https://example.com/blog', title: 'Blog' } });
  ph.capture({ uuid: '01900000-0000-7000-8000-000000000004', distinctId: 'ph-u1', event: '$screen', timestamp: ts,
    properties: { $screen_name: 'Inbox' } });
  ph.groupIdentify({ groupType: 'company', groupKey: 'ph-g1', properties: { name: 'Initech', employees: 12 } });
  ph.alias({ distinctId: 'ph-u1', alias: 'ph-anon-1' });
  await ph.shutdown(20000);
  if (errors.length) throw new Error('posthog: ' + errors.map(String).join('; '));
}

(async () => {
  const only = process.env.SDK; // one of segment, rudder, posthog; all by default
  for (const [name, f] of [['segment', segment], ['rudder', rudder], ['posthog', posthog]]) {
    if (only && only !== name) continue;
    await f();
    console.log('ok ' + name);
  }
})().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
