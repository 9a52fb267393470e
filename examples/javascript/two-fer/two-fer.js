// A learner's solution, with one mistake: the name is not used.
export const twoFer = (name = 'you') => `One for you, one for me.`;
