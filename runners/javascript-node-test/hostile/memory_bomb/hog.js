// Buffers live outside V8's heap: nothing stops them but the cgroup.
export const eat = () => {
  const chunks = [];
  for (;;) chunks.push(Buffer.alloc(16 << 20, 1));
};
