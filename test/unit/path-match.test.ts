import { canonicalPath, lenientPath, mayBeAmbiguous } from '../../src/definition/path-match';

/** The two readings of a request path that saga matching uses (docs/saga-format.md, "Matching"). */
describe('canonicalPath', () => {
  it.each([
    ['/itineraries', '/itineraries'],
    ['/ITINERARIES/', '/itineraries'],
    ['//itineraries//', '/itineraries'],
    ['/itinerari%65s', '/itineraries'],
    ['/%7Euser/a%2Db', '/~user/a-b'],
    ['/', '/'],
    ['/x/../itineraries', '/x/../itineraries'],
  ])('%s reads as %s', (path, reading) => {
    expect(canonicalPath(path)).toBe(reading);
  });

  it.each([
    '/itineraries;x',
    '/itineraries%2F',
    '/itineraries%20',
    '/a%2',
    '/a%zz',
    '/a\\b',
    '/caf%C3%A9',
    '/café',
    '/a b',
    '*',
    '',
  ])('%s has no canonical reading', (path) => {
    expect(canonicalPath(path)).toBeUndefined();
  });
});

describe('lenientPath', () => {
  it.each([
    ['/itineraries;x', '/itineraries'],
    ['/itineraries;/', '/itineraries'],
    ['/a;v=1/b;jsessionid=2', '/a/b'],
    ['/itineraries%2F', '/itineraries'],
    ['/itineraries%5c', '/itineraries'],
    ['/itineraries\\', '/itineraries'],
    ['/x%2F..%2Fitineraries', '/itineraries'],
    ['/itineraries%252F', '/itineraries'],
    ['/itineraries%20', '/itineraries'],
    ['/%09itineraries%0D%0A', '/itineraries'],
    ['/itineraries.', '/itineraries'],
    ['/itineraries/./', '/itineraries'],
    ['/x/../itineraries', '/itineraries'],
    ['/itineraries%3Fx=1', '/itineraries'],
    ['/ITINERARIE%C5%BF', '/itineraries'],
    ['/%EF%BD%89tineraries', '/itineraries'],
    ['/caf%C3%A9', '/café'],
    ['/bad%C3', '/bad\uFFFD'],
  ])('%s reads as %s', (path, reading) => {
    expect(lenientPath(path)).toBe(reading);
  });
});

describe('mayBeAmbiguous', () => {
  it('is false only for paths whose lenient reading cannot differ from the canonical one', () => {
    const plain = [
      '/trips',
      '/Trips/',
      '//a/b',
      '/static/app.v2.js',
      '/.well-known/x',
      "/a-b_c~d!$&'()*+,=:@",
    ];
    expect(plain.filter(mayBeAmbiguous)).toEqual([]);
    const odd = ['/a.', '/a/./b', '/a/..', '/a;b', '/a%2Fb', '/a%65', '/a\\b', '/a b', '/é'];
    expect(odd.filter((p) => !mayBeAmbiguous(p))).toEqual([]);
  });
});
