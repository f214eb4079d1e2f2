"""Fine-tune the classifier on data/reviews.csv (kept in the repo; not needed to serve)."""

import pandas as pd
from sklearn.model_selection import train_test_split

if __name__ == "__main__":
    frame = pd.read_csv("data/reviews.csv")
    train, test = train_test_split(frame, test_size=0.1, random_state=0)
    print(len(train), len(test))
