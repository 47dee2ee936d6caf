import { ValidationError } from '../../src/errors';
import { applyChanges, parseChanges } from '../../src/oci/image-changes';

describe('image config changes (-c)', () => {
  test('CMD and ENTRYPOINT: exec form, shell form, and an ENTRYPOINT resets the inherited CMD', () => {
    expect(parseChanges(['CMD ["sh", "-c", "echo hi"]'])).toEqual({ cmd: ['sh', '-c', 'echo hi'] });
    expect(parseChanges(['cmd echo $HOME'])).toEqual({ cmd: ['/bin/sh', '-c', 'echo $HOME'] });
    expect(parseChanges(['CMD [not json'])).toEqual({ cmd: ['/bin/sh', '-c', '[not json'] });
    expect(parseChanges(['CMD []'])).toEqual({ cmd: [] });
    const base = { Cmd: ['old'], Entrypoint: ['/old'] };
    expect(applyChanges(base, parseChanges(['ENTRYPOINT ["/bin/app"]']))).toMatchObject({ Entrypoint: ['/bin/app'], Cmd: null });
    expect(applyChanges(base, parseChanges(['ENTRYPOINT ["/bin/app"]', 'CMD ["--help"]']))).toMatchObject({ Entrypoint: ['/bin/app'], Cmd: ['--help'] });
    expect(base).toEqual({ Cmd: ['old'], Entrypoint: ['/old'] });
  });

  test('ENV and LABEL: pairs with quotes and escapes, the legacy form, later values win in place', () => {
    const changes = parseChanges(['ENV A=1 B="two words" C=it\\ is D=\'$literal\'', 'ENV LEGACY value with  spaces', 'LABEL "com.x.y"="a b" version=1']);
    expect(changes.env).toEqual([
      ['A', '1'],
      ['B', 'two words'],
      ['C', 'it is'],
      ['D', '$literal'],
      ['LEGACY', 'value with  spaces'],
    ]);
    expect(changes.labels).toEqual([
      ['com.x.y', 'a b'],
      ['version', '1'],
    ]);
    const config = applyChanges({ Env: ['PATH=/bin', 'A=0'], Labels: { keep: 'yes' } }, changes);
    expect(config.Env).toEqual(['PATH=/bin', 'A=1', 'B=two words', 'C=it is', 'D=$literal', 'LEGACY=value with  spaces']);
    expect(config.Labels).toEqual({ keep: 'yes', 'com.x.y': 'a b', version: '1' });
  });

  test('WORKDIR is relative to the previous one; USER, EXPOSE, VOLUME, STOPSIGNAL', () => {
    const config = applyChanges({ WorkingDir: '/srv' }, parseChanges(['WORKDIR app', 'WORKDIR data', 'USER 1000:1000', 'EXPOSE 80 53/udp 8000-8002/TCP', 'VOLUME ["/data", "/logs"]', 'VOLUME /cache', 'STOPSIGNAL SIGINT']));
    expect(config).toEqual({
      WorkingDir: '/srv/app/data',
      User: '1000:1000',
      ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8000/tcp': {}, '8001/tcp': {}, '8002/tcp': {} },
      Volumes: { '/data': {}, '/logs': {}, '/cache': {} },
      StopSignal: 'SIGINT',
    });
    expect(applyChanges(undefined, parseChanges(['WORKDIR /abs', 'WORKDIR rel']))).toEqual({ WorkingDir: '/abs/rel' });
  });

  test.each([
    ['RUN echo hi', /RUN is not supported/],
    ['ONBUILD RUN x', /ONBUILD is not supported/],
    ['ENV', /ENV needs an argument/],
    ['ENV =x', /is not KEY=VALUE/],
    ['ENV A', /has no value/],
    ['ENV A="open', /unterminated double quote/],
    ['EXPOSE http', /is not a port/],
    ['EXPOSE 70000', /is not a port/],
    ['EXPOSE 90-80', /is not a port/],
    ['STOPSIGNAL $(reboot)', /is not a signal/],
    ['', /expected INSTRUCTION/],
  ])('%j is refused: %s', (change, message) => {
    expect(() => parseChanges([change])).toThrow(ValidationError);
    expect(() => parseChanges([change])).toThrow(message);
  });
});
