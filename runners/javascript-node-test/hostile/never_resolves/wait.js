// A promise kept pending by a timer that never ends: only the wall clock stops it.
export const wait = () => new Promise(() => { setInterval(() => {}, 1000); });
