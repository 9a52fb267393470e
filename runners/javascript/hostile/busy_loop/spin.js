export const spin = () => {
  let n = 0;
  for (;;) n += 1;
};
