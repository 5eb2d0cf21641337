import {
  AlreadyExistsError,
  BerthError,
  CanceledError,
  DataLossError,
  DeadlineExceededError,
  ErrorKind,
  FailedPreconditionError,
  GrpcCode,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  OutOfRangeError,
  ResourceExhaustedError,
  UnavailableError,
  fromGrpcStatus,
  isAlreadyExists,
  isCanceled,
  isNotFound,
  kindOf,
  toGrpcStatus,
  wrap,
} from './index';

describe('error messages', () => {
  it('appends the kind suffix as containerd does', () => {
    expect(new AlreadyExistsError('namespace "default"').message).toBe('namespace "default": already exists');
    expect(new NotFoundError('content digest sha256:abc').message).toBe('content digest sha256:abc: not found');
  });

  it('does not double the suffix', () => {
    expect(new NotFoundError('x: not found').message).toBe('x: not found');
  });

  it('keeps bare messages bare', () => {
    expect(new NotFoundError('task r1 not found', { bare: true }).message).toBe('task r1 not found');
    expect(new OutOfRangeError('read past object length 27 bytes').message).toBe('read past object length 27 bytes');
  });

  it('names the class', () => {
    expect(new UnavailableError('x').name).toBe('UnavailableError');
  });
});

describe('predicates', () => {
  it('walk the cause chain', () => {
    const inner = new NotFoundError('image "a"');
    const outer = new Error('lookup failed', { cause: inner });
    expect(isNotFound(outer)).toBe(true);
    expect(isAlreadyExists(outer)).toBe(false);
  });

  it('keep the kind through wrap', () => {
    const err = wrap(new InvalidArgumentError('parent "x" is not committed snapshot'), 'failed to create snapshot');
    expect(err.message).toBe('failed to create snapshot: parent "x" is not committed snapshot: invalid argument');
    expect(kindOf(err)).toBe('invalid-argument');
    expect(err).toBeInstanceOf(BerthError);
  });

  it('see abort errors as canceled', () => {
    const ac = new AbortController();
    ac.abort();
    expect(isCanceled(ac.signal.reason)).toBe(true);
  });

  it('treat plain errors and non-errors as unknown', () => {
    expect(kindOf(new Error('boom'))).toBe('unknown');
    expect(kindOf('boom')).toBe('unknown');
    expect(kindOf(undefined)).toBe('unknown');
  });
});

describe('gRPC mapping', () => {
  it.each<[BerthError, GrpcCode]>([
    [new InvalidArgumentError('a'), GrpcCode.INVALID_ARGUMENT],
    [new NotFoundError('a'), GrpcCode.NOT_FOUND],
    [new AlreadyExistsError('a'), GrpcCode.ALREADY_EXISTS],
    [new FailedPreconditionError('a'), GrpcCode.FAILED_PRECONDITION],
    [new UnavailableError('a'), GrpcCode.UNAVAILABLE],
    [new NotImplementedError('a'), GrpcCode.UNIMPLEMENTED],
    [new CanceledError(), GrpcCode.CANCELLED],
    [new DeadlineExceededError(), GrpcCode.DEADLINE_EXCEEDED],
    [new OutOfRangeError('a'), GrpcCode.OUT_OF_RANGE],
    [new DataLossError('a'), GrpcCode.DATA_LOSS],
    [new ResourceExhaustedError('a'), GrpcCode.RESOURCE_EXHAUSTED],
  ])('%s maps to code %i with its full message', (err, code) => {
    expect(toGrpcStatus(err)).toEqual({ code, details: err.message });
  });

  it('maps unknown errors to UNKNOWN keeping the message', () => {
    expect(toGrpcStatus(new TypeError('x is undefined'))).toEqual({ code: GrpcCode.UNKNOWN, details: 'x is undefined' });
  });

  it('passes statuses from downstream calls through', () => {
    expect(toGrpcStatus({ code: 11, details: 'write @3 must occur at current offset 5' })).toEqual({
      code: 11,
      details: 'write @3 must occur at current offset 5',
    });
  });

  it.each<[number, ErrorKind]>([
    [3, 'invalid-argument'],
    [5, 'not-found'],
    [6, 'already-exists'],
    [9, 'failed-precondition'],
    [14, 'unavailable'],
    [12, 'not-implemented'],
    [1, 'canceled'],
    [4, 'deadline-exceeded'],
    [11, 'out-of-range'],
    [15, 'data-loss'],
    [8, 'resource-exhausted'],
    [13, 'unknown'],
    [7, 'unknown'],
  ])('code %i comes back as %s', (code, kind) => {
    expect(kindOf(fromGrpcStatus({ code, details: 'x' }))).toBe(kind);
  });

  it('round-trips messages, stripping and re-adding the suffix', () => {
    const original = new NotFoundError('lease "x"');
    const back = fromGrpcStatus(toGrpcStatus(original));
    expect(back.message).toBe('lease "x": not found');
    expect(back).toBeInstanceOf(NotFoundError);
  });
});
